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
  SELECT intent, coalesce(handoff_reason, '(not escalated)') AS reason, handed_off, human_response_seconds
  FROM conversation_facts
  WHERE started_at >= $from AND started_at < $to AND ($shop = '*' OR shop_id = $shop)
),
grouped AS (
  -- One pass for totals and breakdowns (a CTE used twice is computed twice in DataFusion).
  SELECT
    coalesce(intent, 'all') AS intent,
    coalesce(reason, 'all') AS reason,
    count(CASE WHEN handed_off THEN 1 END) AS escalations,
    count(*) AS conversations_in_group,
    count(CASE WHEN handed_off AND human_response_seconds IS NULL THEN 1 END) AS awaiting_reply,
    round(avg(human_response_seconds) / 60.0, 1) AS avg_human_response_minutes,
    round(median(human_response_seconds) / 60.0, 1) AS median_human_response_minutes
  FROM scoped
  GROUP BY GROUPING SETS ((intent, reason), (intent), (reason), ())
),
with_totals AS (
  SELECT grouped.*,
         max(CASE WHEN reason = 'all' THEN conversations_in_group END) OVER (PARTITION BY intent) AS conversations
  FROM grouped
)
SELECT
  intent,
  reason,
  conversations,
  escalations,
  round(CAST(escalations AS DOUBLE) / nullif(conversations, 0), 4) AS escalation_rate,
  awaiting_reply,
  avg_human_response_minutes,
  median_human_response_minutes
FROM with_totals
WHERE reason <> '(not escalated)'
ORDER BY conversations DESC, intent, CASE WHEN reason = 'all' THEN 0 ELSE 1 END, escalations DESC, reason
