-- view: conversation_facts
-- title: Conversation facts
-- summary: One row per conversation: path, intent, turns, first response, handoff, resolution, reopen and CSAT; every report builds on it.
-- definition: Builds on `conversations`, `turn_facts`, `messages`, `handoffs` and `csat`.
--   The *path* is derived from what happened, not from a stored label: `ai_only` when the
--   assistant answered and no person took part, `ai_then_human` when the assistant took part
--   and then a person (a handoff or an agent message), `human_only` when no automated turn exists
--   (email, imported tickets). The *outcome*: `automated_confirmed` / `automated_assumed` for an
--   ai_only conversation whose last turn answered and was not marked unhelpful (confirmed when
--   the shopper said it helped, assumed when they left after the answer without asking for a
--   person); `abandoned` when the shopper left without an answer that helped (or left a handoff
--   before an agent came); `human_resolved` when a person resolved it; `open` while it is going on.
--   *Reopen*: the same customer's next conversation about the same intent or the same order; its
--   gap is measured from this conversation's end to that one's start (a contact that started
--   before this one ended has a gap of 0 or less and counts as a reopen within any window).
-- column: shop_id | The shop.
-- column: conversation_id | The conversation.
-- column: channel | chat, email, contact_form, ... as ingested.
-- column: customer_id | The shop's customer id when known (verified or from the helpdesk); NULL for anonymous chats.
-- column: order_id | The order the conversation is about, when known.
-- column: started_at | First message (UTC).
-- column: ended_at | Last activity (UTC); the start when unknown.
-- column: week | Monday (UTC) of the week the conversation started, as a DATE.
-- column: intent | The conversation's primary intent; else its first turn's intent; else `unclassified`.
-- column: intents_seen | Distinct intents among its turns (several when the shopper changed subject).
-- column: path | ai_only, ai_then_human or human_only (see the definition).
-- column: outcome | automated_confirmed, automated_assumed, human_resolved, abandoned or open.
-- column: resolved | outcome is automated_* or human_resolved.
-- column: automated | outcome is automated_confirmed or automated_assumed.
-- column: shopper_messages | Messages from the shopper.
-- column: ai_turns | Automated turns.
-- column: ai_answers | Automated turns that answered.
-- column: abstentions | Automated turns that abstained.
-- column: agent_messages | Messages from agents (agent replies).
-- column: first_response_seconds | From the first shopper message to the first assistant or agent message after it.
-- column: handed_off | Whether the conversation was escalated to a person.
-- column: handoff_reason | Reason of the first handoff: explicit_request, sensitive_intent, low_confidence, missing_data.
-- column: handoff_at | When the first handoff happened.
-- column: human_response_seconds | From the first handoff to the first agent reply; NULL while no agent has replied.
-- column: agent_handle_seconds | Agent working time on the conversation, as recorded by the helpdesk or inbox.
-- column: next_contact_gap_seconds | Seconds from this conversation's end to the same customer's next conversation on the same intent or order; NULL when there is none.
-- column: previous_contact_gap_seconds | Seconds from the end of the same customer's previous conversation on the same intent or order to this one's start; NULL when there is none.
-- column: reopened_within_7d | resolved and next_contact_gap_seconds <= 7 days (the `reopen` report takes any window).
-- column: csat_score | CSAT score 1..5 when the shopper rated the conversation.
-- column: first_question | The shopper's first message (PII-redacted).
WITH turn_stats AS (
  -- Plain conditional aggregates over ranked rows: ordered aggregates (array_agg ... ORDER BY)
  -- keep every value per group and made this view 10× slower at scale 100 (BENCHMARKS.md).
  SELECT shop_id, conversation_id,
         count(*) AS ai_turns,
         count(CASE WHEN answered THEN 1 END) AS ai_answers,
         count(CASE WHEN abstained THEN 1 END) AS abstentions,
         count(DISTINCT intent) AS intents_seen,
         max(CASE WHEN turn_number = 1 THEN intent END) AS first_turn_intent,
         bool_or(CASE WHEN turn_number = conversation_turns THEN answered END) AS last_turn_answered,
         bool_or(CASE WHEN turn_number = conversation_turns THEN helpful END) AS last_turn_helpful,
         bool_or(helpful) AS said_helpful
  FROM turn_facts
  GROUP BY shop_id, conversation_id
),
-- First-of-conversation and neighbouring contacts come from lag/lead over one global order
-- with a same-group guard, not from windows PARTITION BY conversation or customer: those pay
-- a fixed cost per partition in DataFusion and made `reopen` 2× slower than DuckDB (see
-- turn_facts for the same choice).
marked_messages AS (
  SELECT shop_id, conversation_id, role, created_at, text,
         min(CASE WHEN role = 'shopper' THEN created_at END)
           OVER (PARTITION BY shop_id, conversation_id) AS first_shopper_at,
         role = 'shopper' AND NOT coalesce(
           lag(shop_id) OVER shopper_first = shop_id AND lag(conversation_id) OVER shopper_first = conversation_id, false)
           AS first_of_conversation
  FROM messages
  WINDOW shopper_first AS (ORDER BY shop_id, conversation_id, CASE WHEN role = 'shopper' THEN 0 ELSE 1 END, created_at, seq)
),
message_stats AS (
  SELECT shop_id, conversation_id,
         count(CASE WHEN role = 'shopper' THEN 1 END) AS shopper_messages,
         count(CASE WHEN role = 'agent' THEN 1 END) AS agent_messages,
         min(first_shopper_at) AS first_shopper_at,
         max(CASE WHEN first_of_conversation THEN text END) AS first_question,
         min(CASE WHEN role IN ('ai', 'agent') AND created_at >= first_shopper_at THEN created_at END) AS first_response_at,
         min(CASE WHEN role = 'agent' THEN created_at END) AS first_agent_at,
         max(created_at) AS last_message_at
  FROM marked_messages
  GROUP BY shop_id, conversation_id
),
handoff_stats AS (
  SELECT shop_id, conversation_id,
         min(created_at) AS handoff_at,
         max(CASE WHEN first_of_conversation THEN coalesce(reason, 'unspecified') END) AS handoff_reason,
         min(first_agent_reply_at) AS first_agent_reply_at,
         max(resolved_at) AS resolved_at
  FROM (SELECT handoffs.*,
               NOT coalesce(lag(shop_id) OVER by_time = shop_id AND lag(conversation_id) OVER by_time = conversation_id, false)
                 AS first_of_conversation
        FROM handoffs
        WINDOW by_time AS (ORDER BY shop_id, conversation_id, created_at, id)) ranked
  GROUP BY shop_id, conversation_id
),
facts AS (
  SELECT
    c.shop_id,
    c.id AS conversation_id,
    c.channel,
    c.customer_id,
    c.order_id,
    c.started_at,
    coalesce(c.ended_at, m.last_message_at, c.started_at) AS ended_at,
    coalesce(c.primary_intent, t.first_turn_intent, 'unclassified') AS intent,
    coalesce(t.intents_seen, 0) AS intents_seen,
    c.status,
    coalesce(c.shopper_confirmed, false) OR coalesce(t.said_helpful, false) AS confirmed,
    coalesce(t.last_turn_answered, false) AND coalesce(t.last_turn_helpful, true) AS ended_on_answer,
    coalesce(t.ai_turns, 0) AS ai_turns,
    coalesce(t.ai_answers, 0) AS ai_answers,
    coalesce(t.abstentions, 0) AS abstentions,
    coalesce(m.shopper_messages, 0) AS shopper_messages,
    coalesce(m.agent_messages, 0) AS agent_messages,
    date_part('epoch', m.first_response_at) - date_part('epoch', m.first_shopper_at) AS first_response_seconds,
    h.handoff_at IS NOT NULL AS handed_off,
    h.handoff_reason,
    h.handoff_at,
    h.resolved_at AS handoff_resolved_at,
    date_part('epoch', coalesce(h.first_agent_reply_at, CASE WHEN m.first_agent_at >= h.handoff_at THEN m.first_agent_at END))
      - date_part('epoch', h.handoff_at) AS human_response_seconds,
    c.agent_handle_seconds,
    m.first_question
  FROM conversations c
  LEFT JOIN turn_stats t ON t.shop_id = c.shop_id AND t.conversation_id = c.id
  LEFT JOIN message_stats m ON m.shop_id = c.shop_id AND m.conversation_id = c.id
  LEFT JOIN handoff_stats h ON h.shop_id = c.shop_id AND h.conversation_id = c.id
),
classified AS (
  SELECT facts.*,
         CASE
           WHEN ai_turns > 0 AND (handed_off OR agent_messages > 0) THEN 'ai_then_human'
           WHEN ai_turns > 0 THEN 'ai_only'
           ELSE 'human_only'
         END AS path
  FROM facts
),
outcomes AS (
  SELECT classified.*,
         CASE
           WHEN path = 'ai_only' THEN
             CASE
               WHEN status = 'open' THEN 'open'
               WHEN ended_on_answer AND confirmed THEN 'automated_confirmed'
               WHEN ended_on_answer THEN 'automated_assumed'
               ELSE 'abandoned'
             END
           WHEN status = 'resolved' OR handoff_resolved_at IS NOT NULL THEN 'human_resolved'
           WHEN status = 'abandoned' THEN 'abandoned'
           ELSE 'open'
         END AS outcome,
         -- The same customer's neighbouring contacts about the same intent, and about the same order.
         CASE WHEN lead(shop_id) OVER by_intent = shop_id AND lead(customer_id) OVER by_intent = customer_id
                   AND lead(intent) OVER by_intent = intent
              THEN lead(started_at) OVER by_intent END AS next_same_intent_at,
         CASE WHEN lag(shop_id) OVER by_intent = shop_id AND lag(customer_id) OVER by_intent = customer_id
                   AND lag(intent) OVER by_intent = intent
              THEN lag(ended_at) OVER by_intent END AS previous_same_intent_end,
         CASE WHEN lead(shop_id) OVER by_order = shop_id AND lead(customer_id) OVER by_order = customer_id
                   AND lead(order_id) OVER by_order = order_id
              THEN lead(started_at) OVER by_order END AS next_same_order_at,
         CASE WHEN lag(shop_id) OVER by_order = shop_id AND lag(customer_id) OVER by_order = customer_id
                   AND lag(order_id) OVER by_order = order_id
              THEN lag(ended_at) OVER by_order END AS previous_same_order_end
  FROM classified
  WINDOW by_intent AS (ORDER BY shop_id, customer_id, intent, started_at, conversation_id),
         by_order AS (ORDER BY shop_id, customer_id, order_id, started_at, conversation_id)
),
gaps AS (
  SELECT outcomes.*,
         outcome IN ('automated_confirmed', 'automated_assumed', 'human_resolved') AS resolved,
         outcome IN ('automated_confirmed', 'automated_assumed') AS automated,
         CASE WHEN customer_id IS NOT NULL THEN
           date_part('epoch', least(next_same_intent_at, next_same_order_at)) - date_part('epoch', ended_at) END
           AS next_contact_gap_seconds,
         CASE WHEN customer_id IS NOT NULL THEN
           date_part('epoch', started_at) - date_part('epoch', greatest(previous_same_intent_end, previous_same_order_end)) END
           AS previous_contact_gap_seconds
  FROM outcomes
)
SELECT
  g.shop_id, g.conversation_id, g.channel, g.customer_id, g.order_id,
  g.started_at, g.ended_at,
  CAST(date_trunc('week', g.started_at) AS DATE) AS week,
  g.intent, g.intents_seen, g.path, g.outcome, g.resolved, g.automated,
  g.shopper_messages, g.ai_turns, g.ai_answers, g.abstentions, g.agent_messages,
  g.first_response_seconds,
  g.handed_off, g.handoff_reason, g.handoff_at, g.human_response_seconds,
  g.agent_handle_seconds,
  g.next_contact_gap_seconds,
  g.previous_contact_gap_seconds,
  g.resolved AND coalesce(g.next_contact_gap_seconds <= 7 * 86400, false) AS reopened_within_7d,
  s.score AS csat_score,
  g.first_question
FROM gaps g
LEFT JOIN csat s ON s.shop_id = g.shop_id AND s.conversation_id = g.conversation_id
