-- report: load
-- title: Support load (blueprint audit)
-- summary: Volume, agent replies and handle time by intent and week, with the data each intent needs and whether a person was required.
-- definition: Over conversations that started in [from, to) — live chats and imported helpdesk
--   history alike. *Agent replies*: messages written by agents. *Handle time*: the agent working
--   time the helpdesk or inbox recorded (`agent_handle_seconds`). *Human involved*: a person took
--   part (path ai_then_human or human_only). The last three columns come from the `intents` view:
--   the system of record each intent needs, whether it needs a verified identity, and whether
--   automation can finish it. Rows per intent and week, per intent (week `all`) and a grand total.
-- param: from timestamp auto | Start of the window (inclusive), by conversation start. Default: the first conversation.
-- param: to timestamp auto | End of the window (exclusive). Default: just after the last conversation.
-- param: shop text * | A shop_id, or * for every shop.
-- column: intent | Conversation intent; `all` on the total row.
-- column: week | Monday (UTC) of the week; `all` on intent rows.
-- column: conversations | Conversations that started in the window.
-- column: agent_replies | Messages written by agents.
-- column: replies_per_conversation | agent_replies ÷ conversations.
-- column: agent_hours | Total handle time, hours.
-- column: avg_handle_minutes | Mean handle time of conversations with recorded handle time.
-- column: human_involved | Conversations a person took part in.
-- column: human_rate | human_involved ÷ conversations.
-- column: system_of_record | Lake tables the intent's answers come from.
-- column: needs_verification | Whether answering needs a verified identity.
-- column: human_required | no, sometimes or always: whether automation can finish the intent.
-- chart: bar x=intent y=agent_hours where week=all
WITH load AS (
  SELECT
    coalesce(intent, 'all') AS intent,
    coalesce(CAST(week AS VARCHAR), 'all') AS week,
    count(*) AS conversations,
    coalesce(sum(agent_messages), 0) AS agent_replies,
    round(CAST(coalesce(sum(agent_messages), 0) AS DOUBLE) / nullif(count(*), 0), 2) AS replies_per_conversation,
    round(coalesce(sum(agent_handle_seconds), 0) / 3600.0, 2) AS agent_hours,
    round(avg(agent_handle_seconds) / 60.0, 1) AS avg_handle_minutes,
    count(CASE WHEN path <> 'ai_only' THEN 1 END) AS human_involved,
    round(CAST(count(CASE WHEN path <> 'ai_only' THEN 1 END) AS DOUBLE) / nullif(count(*), 0), 4) AS human_rate
  FROM conversation_facts
  WHERE started_at >= $from AND started_at < $to AND ($shop = '*' OR shop_id = $shop)
  GROUP BY GROUPING SETS ((intent, week), (intent), ())
)
SELECT
  l.*,
  i.system_of_record,
  i.needs_verification,
  i.human_required
FROM load l
LEFT JOIN intents i ON i.intent = l.intent
ORDER BY
  CASE WHEN l.intent = 'all' THEN 0 ELSE 1 END,
  sum(CASE WHEN l.week = 'all' THEN l.conversations END) OVER (PARTITION BY l.intent) DESC,
  l.intent,
  CASE WHEN l.week = 'all' THEN 0 ELSE 1 END,
  l.week
