-- report: resolution
-- title: Automated resolution
-- summary: Automated resolution rate (confirmed vs assumed), answer rate and abandonment, by week and intent.
-- definition: Over conversations that started in [from, to). A conversation is *automatically
--   resolved* when only the assistant took part (no handoff, no agent message) and its last
--   automated turn answered without being marked unhelpful; *confirmed* when the shopper said it
--   helped, *assumed* when they left after the answer without asking for a person
--   (conversation_facts.outcome). *Answer rate*: conversations where the assistant answered at
--   least once ÷ conversations it took part in. *Abandonment*: conversations the assistant took
--   part in that ended without an answer that helped and without a person ÷ the same base.
--   Rows per week and intent, a total row per week (intent `all`) and a grand total (`all`, `all`).
-- param: from timestamp auto | Start of the window (inclusive), by conversation start. Default: the first conversation.
-- param: to timestamp auto | End of the window (exclusive). Default: just after the last conversation.
-- param: shop text * | A shop_id, or * for every shop.
-- column: week | Monday (UTC) of the week the conversations started; `all` on total rows.
-- column: intent | Conversation intent; `all` on total rows.
-- column: conversations | Conversations that started in the window.
-- column: automated_confirmed | Automatically resolved and confirmed by the shopper.
-- column: automated_assumed | Automatically resolved, assumed: the shopper left after the answer.
-- column: automated_resolution_rate | (automated_confirmed + automated_assumed) ÷ conversations.
-- column: confirmed_rate | automated_confirmed ÷ conversations.
-- column: ai_engaged | Conversations with at least one automated turn.
-- column: answer_rate | Conversations with at least one answered turn ÷ ai_engaged; NULL when ai_engaged is 0.
-- column: abandoned | ai_engaged conversations that ended abandoned.
-- column: abandonment_rate | abandoned ÷ ai_engaged; NULL when ai_engaged is 0.
-- chart: line x=week y=automated_resolution_rate,answer_rate,abandonment_rate where intent=all
SELECT
  coalesce(CAST(week AS VARCHAR), 'all') AS week,
  coalesce(intent, 'all') AS intent,
  count(*) AS conversations,
  count(CASE WHEN outcome = 'automated_confirmed' THEN 1 END) AS automated_confirmed,
  count(CASE WHEN outcome = 'automated_assumed' THEN 1 END) AS automated_assumed,
  round(CAST(count(CASE WHEN automated THEN 1 END) AS DOUBLE) / nullif(count(*), 0), 4) AS automated_resolution_rate,
  round(CAST(count(CASE WHEN outcome = 'automated_confirmed' THEN 1 END) AS DOUBLE) / nullif(count(*), 0), 4) AS confirmed_rate,
  count(CASE WHEN ai_turns > 0 THEN 1 END) AS ai_engaged,
  round(CAST(count(CASE WHEN ai_answers > 0 THEN 1 END) AS DOUBLE)
        / nullif(count(CASE WHEN ai_turns > 0 THEN 1 END), 0), 4) AS answer_rate,
  count(CASE WHEN ai_turns > 0 AND outcome = 'abandoned' THEN 1 END) AS abandoned,
  round(CAST(count(CASE WHEN ai_turns > 0 AND outcome = 'abandoned' THEN 1 END) AS DOUBLE)
        / nullif(count(CASE WHEN ai_turns > 0 THEN 1 END), 0), 4) AS abandonment_rate
FROM conversation_facts
WHERE started_at >= $from AND started_at < $to AND ($shop = '*' OR shop_id = $shop)
GROUP BY GROUPING SETS ((week, intent), (week), ())
ORDER BY week, CASE WHEN intent = 'all' THEN 0 ELSE 1 END, conversations DESC, intent
