-- report: knowledge-gaps
-- title: Knowledge gaps
-- summary: Unanswered questions grouped into clusters of similar questions, with the closest article or policy, ranked by impact.
-- definition: The unanswered turns of [from, to) (fragment `unanswered_turns`) are reduced by
--   this SQL to one row per question, intent and conversation; the index crate then embeds the
--   questions with the same model as the search index and groups them into clusters of similar
--   questions (cosine similarity to the cluster centroid of at least $cluster_similarity). For
--   each cluster it finds the closest policy or article passage and its cosine similarity (a low
--   similarity means the knowledge base has nothing on it), and the products and policies the
--   questions name. *Impact* = unanswered turns × (1 + escalation share + dissatisfied share),
--   where the shares are of the cluster's conversations that were handed off and of its rated
--   conversations scored 1–3: volume, weighted by what the gap costs. Ranked by impact.
-- param: from timestamp auto | Start of the window (inclusive), by turn time. Default: the first conversation.
-- param: to timestamp auto | End of the window (exclusive). Default: just after the last conversation.
-- param: shop text * | A shop_id, or * for every shop.
-- param: confidence_threshold float 0.6 | Answers below this confidence count as unanswered.
-- param: cluster_similarity float 0.6 | Minimum cosine similarity of a question to its cluster's centroid (applied by the clustering step).
-- post: cluster_questions
-- column: rank | 1 = highest impact.
-- column: cluster | The cluster's most asked question; among equally asked ones, the one closest to the centroid.
-- column: unanswered_turns | Unanswered turns whose question falls in the cluster.
-- column: conversations | Distinct conversations.
-- column: distinct_questions | Distinct questions in the cluster (spellings differing only in case, spacing or numbers count once).
-- column: intents | The cluster's intents, most frequent first.
-- column: escalation_share | Share of its conversations handed off to a person.
-- column: dissatisfied_share | Share of its rated conversations scored 1–3; 0 when none was rated.
-- column: impact | unanswered_turns × (1 + escalation_share + dissatisfied_share).
-- column: example_questions | Up to three questions, most frequent first, separated by ` | `.
-- column: closest_doc | Key of the closest policy or article passage.
-- column: closest_title | Its title path.
-- column: closest_url | Its storefront URL.
-- column: similarity | Cosine similarity between the cluster centroid and that passage.
-- column: mentions | Products the questions name, then the documents the retriever ranked first most often, separated by `, `.
-- chart: bar x=cluster y=impact
WITH unanswered AS (
-- include: unanswered_turns
),
scoped AS (
  SELECT u.intent, u.question, u.topic, u.conversation_id, u.created_at,
         f.handed_off, f.csat_score
  FROM unanswered u
  JOIN conversation_facts f ON f.shop_id = u.shop_id AND f.conversation_id = u.conversation_id
  WHERE u.created_at >= $from AND u.created_at < $to AND u.question IS NOT NULL
)
SELECT
  question,
  intent,
  conversation_id,
  count(*) AS unanswered_turns,
  bool_or(handed_off) AS handed_off,
  max(csat_score) AS csat_score,
  max(topic) AS topic,
  max(created_at) AS last_asked
FROM scoped
GROUP BY question, intent, conversation_id
ORDER BY question, intent, conversation_id
