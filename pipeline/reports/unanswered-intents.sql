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
counts AS (
  SELECT
    intent,
    coalesce(topic, 'all') AS topic,
    count(CASE WHEN current_period THEN 1 END) AS unanswered_turns,
    count(DISTINCT CASE WHEN current_period THEN conversation_id END) AS conversations,
    count(CASE WHEN current_period AND unanswered_kind = 'abstained' THEN 1 END) AS abstained,
    count(CASE WHEN current_period AND unanswered_kind = 'low_confidence' THEN 1 END) AS low_confidence,
    count(CASE WHEN current_period AND unanswered_kind = 'escalated' THEN 1 END) AS escalated,
    count(CASE WHEN NOT current_period THEN 1 END) AS previous_turns
  FROM scoped
  GROUP BY GROUPING SETS ((intent, topic), (intent))
),
question_counts AS (
  SELECT intent, coalesce(topic, 'all') AS topic, question, count(*) AS asked, max(created_at) AS last_asked
  FROM scoped
  WHERE current_period AND question IS NOT NULL
  GROUP BY GROUPING SETS ((intent, topic, question), (intent, question))
),
examples AS (
  SELECT intent, topic,
         array_to_string(array_slice(array_agg(question ORDER BY asked DESC, last_asked DESC, question), 1, 3), ' | ')
           AS example_questions
  FROM question_counts
  GROUP BY intent, topic
)
SELECT
  c.intent,
  c.topic,
  c.unanswered_turns,
  c.conversations,
  c.abstained,
  c.low_confidence,
  c.escalated,
  c.previous_turns,
  c.unanswered_turns - c.previous_turns AS change,
  round(CAST(c.unanswered_turns - c.previous_turns AS DOUBLE) / nullif(c.previous_turns, 0), 4) AS change_pct,
  coalesce(x.example_questions, '') AS example_questions
FROM counts c
LEFT JOIN examples x ON x.intent = c.intent AND x.topic = c.topic
ORDER BY
  sum(CASE WHEN c.topic = 'all' THEN c.unanswered_turns END) OVER (PARTITION BY c.intent) DESC,
  c.intent,
  CASE WHEN c.topic = 'all' THEN 0 ELSE 1 END,
  c.unanswered_turns DESC,
  c.topic
