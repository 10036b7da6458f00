-- report: csat-by-path
-- title: CSAT by resolution path
-- summary: CSAT responses, response rate, average score and share of 4–5 per resolution path, with an intent breakdown.
-- definition: Over conversations that started in [from, to), grouped by the derived path
--   (conversation_facts.path: ai_only, ai_then_human, human_only). *Response rate*: rated
--   conversations ÷ closed conversations (every outcome but `open`; CSAT is asked when a
--   conversation ends). *Average score* and *% of 4–5* are over the ratings given; conversations
--   without a rating are not counted as any score. Rows per path (intent `all`), per path and
--   intent, and a grand total (`all`, `all`).
-- param: from timestamp auto | Start of the window (inclusive), by conversation start. Default: the first conversation.
-- param: to timestamp auto | End of the window (exclusive). Default: just after the last conversation.
-- param: shop text * | A shop_id, or * for every shop.
-- column: path | ai_only, ai_then_human, human_only; `all` on the total row.
-- column: intent | Conversation intent; `all` on path rows.
-- column: conversations | Conversations that started in the window.
-- column: closed | Conversations not open.
-- column: responses | Conversations with a CSAT rating.
-- column: response_rate | responses ÷ closed; NULL when nothing is closed.
-- column: avg_score | Mean rating (1..5), two decimals; NULL without responses.
-- column: pct_4_5 | Ratings of 4 or 5 ÷ responses; NULL without responses.
-- chart: bar x=path y=avg_score where intent=all
SELECT
  coalesce(path, 'all') AS path,
  coalesce(intent, 'all') AS intent,
  count(*) AS conversations,
  count(CASE WHEN outcome <> 'open' THEN 1 END) AS closed,
  count(csat_score) AS responses,
  round(CAST(count(csat_score) AS DOUBLE) / nullif(count(CASE WHEN outcome <> 'open' THEN 1 END), 0), 4) AS response_rate,
  round(avg(CAST(csat_score AS DOUBLE)), 2) AS avg_score,
  round(CAST(count(CASE WHEN csat_score >= 4 THEN 1 END) AS DOUBLE) / nullif(count(csat_score), 0), 4) AS pct_4_5
FROM conversation_facts
WHERE started_at >= $from AND started_at < $to AND ($shop = '*' OR shop_id = $shop)
GROUP BY GROUPING SETS ((path), (path, intent), ())
ORDER BY CASE WHEN path = 'all' THEN 1 ELSE 0 END, path, CASE WHEN intent = 'all' THEN 0 ELSE 1 END, responses DESC, intent
