-- report: unanswered-intents
-- title: Unanswered intents
-- summary: Turns that abstained, answered with low confidence or escalated for missing knowledge, by intent and topic, with the trend and example questions.
-- definition: Unanswered turns (fragment `unanswered_turns`: abstained, answered below
--   $confidence_threshold, or handed off for missing knowledge not right after an abstention) sent
--   in [from, to), compared with the previous period of the same length [prev_from, from). The
--   *topic* is the retriever's top document for the turn (`(nothing retrieved)` when none).
--   *Example questions*: the three most frequent shopper questions of the current period (most
--   recent first on ties), PII-redacted at ingest. Rows per intent and topic and per intent (topic
--   `all`). The default window is the last 28 days of data.
-- param: from timestamp auto | Start of the current period (inclusive), by turn time. Default: 28 days before `to`.
-- param: to timestamp auto | End of the current period (exclusive). Default: just after the last conversation.
-- param: prev_from timestamp derived | Start of the previous period: from − (to − from). Derived, not settable.
-- param: shop text * | A shop_id, or * for every shop.
-- param: confidence_threshold float 0.6 | Answers below this confidence count as unanswered.
-- window-days: 28
-- column: intent | Turn intent.
-- column: topic | Top retrieved document key; `all` on intent rows.
-- column: unanswered_turns | Unanswered turns in the current period.
-- column: conversations | Distinct conversations they belong to.
-- column: abstained | Of which abstained.
-- column: low_confidence | Of which answered below the threshold.
-- column: escalated | Of which handed off for missing knowledge.
-- column: previous_turns | Unanswered turns in the previous period.
-- column: change | unanswered_turns − previous_turns.
-- column: change_pct | change ÷ previous_turns; NULL when previous_turns is 0.
-- column: example_questions | Up to three example questions, separated by ` | `.
-- chart: bar x=intent y=unanswered_turns,previous_turns where topic=all
WITH unanswered AS (
-- include: unanswered_turns
),
scoped AS (
  SELECT intent,
         coalesce(topic, '(nothing retrieved)') AS topic,
         conversation_id,
         unanswered_kind,
         question,
         created_at,
         created_at >= $from AS current_period
  FROM unanswered
  WHERE created_at >= $prev_from AND created_at < $to
),
by_question AS (
  -- One pass over the turns, per question (per topic, and across the intent's topics); the
  -- rows are then summed per topic. Two passes (counts, then examples) cost twice the
  -- turn_facts view, which DataFusion does not materialise between CTE references.
  SELECT
    intent,
    coalesce(topic, 'all') AS topic,
    question,
    count(CASE WHEN current_period THEN 1 END) AS asked,
    count(CASE WHEN current_period AND unanswered_kind = 'abstained' THEN 1 END) AS abstained,
    count(CASE WHEN current_period AND unanswered_kind = 'low_confidence' THEN 1 END) AS low_confidence,
    count(CASE WHEN current_period AND unanswered_kind = 'escalated' THEN 1 END) AS escalated,
    count(CASE WHEN NOT current_period THEN 1 END) AS previous_turns,
    max(CASE WHEN current_period THEN created_at END) AS last_asked,
    array_agg(DISTINCT conversation_id) FILTER (WHERE current_period) AS conversations
  FROM scoped
  GROUP BY GROUPING SETS ((intent, topic, question), (intent, question))
),
by_topic AS (
  SELECT
    intent,
    topic,
    sum(asked) AS unanswered_turns,
    coalesce(array_length(array_distinct(flatten(
      array_agg(conversations) FILTER (WHERE conversations IS NOT NULL)))), 0) AS conversations,
    sum(abstained) AS abstained,
    sum(low_confidence) AS low_confidence,
    sum(escalated) AS escalated,
    sum(previous_turns) AS previous_turns,
    array_to_string(array_slice(
      array_agg(question ORDER BY asked DESC, last_asked DESC, question)
        FILTER (WHERE asked > 0 AND question IS NOT NULL), 1, 3), ' | ') AS example_questions
  FROM by_question
  GROUP BY intent, topic
)
SELECT
  intent,
  topic,
  unanswered_turns,
  conversations,
  abstained,
  low_confidence,
  escalated,
  previous_turns,
  unanswered_turns - previous_turns AS change,
  round(CAST(unanswered_turns - previous_turns AS DOUBLE) / nullif(previous_turns, 0), 4) AS change_pct,
  coalesce(example_questions, '') AS example_questions
FROM by_topic
ORDER BY
  sum(CASE WHEN topic = 'all' THEN unanswered_turns END) OVER (PARTITION BY intent) DESC,
  intent,
  CASE WHEN topic = 'all' THEN 0 ELSE 1 END,
  unanswered_turns DESC,
  topic
