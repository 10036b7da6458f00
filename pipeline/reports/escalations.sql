-- report: escalations
-- title: Escalations
-- summary: Escalation rate by intent and reason, and how fast a person replied after the handoff.
-- definition: Over conversations that started in [from, to). A conversation is *escalated* when
--   it has a handoff to a person; its reason is the first handoff's (explicit_request,
--   sensitive_intent, low_confidence, missing_data). *Escalation rate*: escalated conversations
--   (of that reason) ÷ all conversations of the intent. *Human response time*: from the handoff
--   to the first agent reply (the handoff's recorded reply time, else the first agent message
--   after it); handoffs with no reply yet are counted as awaiting and left out of the times.
--   Rows per intent (reason `all`, present even with no escalations), per intent and reason, per
--   reason over all intents (intent `all`) and a grand total.
-- param: from timestamp auto | Start of the window (inclusive), by conversation start. Default: the first conversation.
-- param: to timestamp auto | End of the window (exclusive). Default: just after the last conversation.
-- param: shop text * | A shop_id, or * for every shop.
-- column: intent | Conversation intent; `all` on total rows.
-- column: reason | Handoff reason; `all` on intent rows.
-- column: conversations | Conversations of the intent in the window.
-- column: escalations | Escalated conversations (with this reason).
-- column: escalation_rate | escalations ÷ conversations.
-- column: awaiting_reply | Escalations no agent has replied to yet.
-- column: avg_human_response_minutes | Mean minutes from handoff to first agent reply.
-- column: median_human_response_minutes | Median of the same.
-- chart: bar x=intent y=escalation_rate where reason=all
WITH scoped AS (
  SELECT * FROM conversation_facts
  WHERE started_at >= $from AND started_at < $to AND ($shop = '*' OR shop_id = $shop)
),
intent_totals AS (
  SELECT coalesce(intent, 'all') AS intent, count(*) AS conversations
  FROM scoped
  GROUP BY GROUPING SETS ((intent), ())
),
escalated AS (
  SELECT
    coalesce(intent, 'all') AS intent,
    coalesce(handoff_reason, 'all') AS reason,
    count(*) AS escalations,
    count(CASE WHEN human_response_seconds IS NULL THEN 1 END) AS awaiting_reply,
    round(avg(human_response_seconds) / 60.0, 1) AS avg_human_response_minutes,
    round(median(human_response_seconds) / 60.0, 1) AS median_human_response_minutes
  FROM scoped
  WHERE handed_off
  GROUP BY GROUPING SETS ((intent, handoff_reason), (intent), (handoff_reason), ())
)
SELECT
  t.intent,
  coalesce(e.reason, 'all') AS reason,
  t.conversations,
  coalesce(e.escalations, 0) AS escalations,
  round(CAST(coalesce(e.escalations, 0) AS DOUBLE) / nullif(t.conversations, 0), 4) AS escalation_rate,
  coalesce(e.awaiting_reply, 0) AS awaiting_reply,
  e.avg_human_response_minutes,
  e.median_human_response_minutes
FROM intent_totals t
LEFT JOIN escalated e ON e.intent = t.intent
ORDER BY t.conversations DESC, t.intent, CASE WHEN coalesce(e.reason, 'all') = 'all' THEN 0 ELSE 1 END, escalations DESC, reason
