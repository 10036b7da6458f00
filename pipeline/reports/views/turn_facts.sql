-- view: turn_facts
-- title: Turn facts
-- summary: One row per automated answer: intent, confidence, whether it answered, what it retrieved, and the question it answered.
-- definition: Builds on `turns`, `messages` and `handoffs`. A turn *answered* when it did not
--   abstain and was not only a verification request or a handoff (answer kinds `abstain`,
--   `verification`, `handoff`). The *question* is the shopper's latest message at or before the
--   turn, or, when the previous turn asked for verification, before that request (the reply
--   in between is an order number and email, not a question); PII was redacted at ingest. The *topic* of a turn is the retriever's top-ranked
--   document (`retrieved` is stored in rank order), whether or not the answer cited it.
-- column: shop_id | The shop.
-- column: turn_id | The turn.
-- column: conversation_id | Its conversation.
-- column: message_id | The assistant message that carried the answer.
-- column: created_at | When the answer was sent (UTC).
-- column: intent | Classified intent; `unclassified` when missing.
-- column: confidence | Classifier/answer confidence, 0..1.
-- column: answer_kind | order_data, stock, product_facts, return_eligibility, knowledge, verification, handoff or abstain.
-- column: answered | true when the turn gave an answer (see the definition).
-- column: abstained | true when the assistant said it did not know.
-- column: abstain_reason | no_relevant_passage, missing_data, out_of_scope, ...
-- column: needs_verification | true when the turn asked the shopper to verify first.
-- column: helpful | The shopper's feedback on this answer, when given.
-- column: handoff_reason | For handoff turns: the reason of the conversation's first handoff.
-- column: follows_abstention | true when the conversation's previous turn abstained.
-- column: turn_number | 1 for the conversation's first automated turn, 2 for the next, ...
-- column: conversation_turns | Automated turns in the conversation.
-- column: topic | Top retrieved document key; NULL when nothing was retrieved.
-- column: topic_score | Its fused retrieval score.
-- column: latency_ms | Time to answer.
-- column: question | The shopper message this turn answered (PII-redacted).

-- Neighbouring rows are found with lag/lead over one global order plus a same-conversation
-- guard, not with windows PARTITION BY conversation: DataFusion's streaming window operator
-- pays a fixed cost per partition, and one partition per conversation (~280k at scale 100)
-- made this view 3× slower than the same SQL in DuckDB (BENCHMARKS.md). Unordered
-- per-conversation windows (count, min) do not have that cost and stay partitioned.
WITH first_handoff AS (
  SELECT shop_id, conversation_id, reason
  FROM (SELECT shop_id, conversation_id, reason,
               lag(shop_id) OVER by_time = shop_id AND lag(conversation_id) OVER by_time = conversation_id AS follows_handoff
        FROM handoffs
        WINDOW by_time AS (ORDER BY shop_id, conversation_id, created_at, id)) ranked
  WHERE NOT coalesce(follows_handoff, false)
),
in_order AS (
  SELECT turns.*,
         lag(shop_id) OVER by_time = shop_id AND lag(conversation_id) OVER by_time = conversation_id AS follows_turn,
         lag(coalesce(abstained, false)) OVER by_time AS before_abstained,
         lag(answer_kind) OVER by_time AS before_kind,
         lag(created_at) OVER by_time AS before_at,
         row_number() OVER by_time AS position
  FROM turns
  WINDOW by_time AS (ORDER BY shop_id, conversation_id, created_at, id)
),
ordered AS (
  SELECT in_order.*,
         CASE WHEN follows_turn THEN before_abstained END AS previous_abstained,
         CASE WHEN follows_turn THEN before_kind END AS previous_kind,
         CASE WHEN follows_turn THEN before_at END AS previous_at,
         position - min(position) OVER (PARTITION BY shop_id, conversation_id) + 1 AS turn_number,
         count(*) OVER (PARTITION BY shop_id, conversation_id) AS conversation_turns
  FROM in_order
),
question_candidates AS (
  -- After a verification request the shopper's next message is their order number and
  -- email, not a question: the question is then the last message before that request.
  SELECT t.shop_id, t.id AS turn_id, m.text,
         lag(t.id) OVER latest_first = t.id AND lag(t.shop_id) OVER latest_first = t.shop_id AS has_later
  FROM ordered t
  JOIN messages m ON m.shop_id = t.shop_id AND m.conversation_id = t.conversation_id
  WHERE m.role = 'shopper'
    AND m.created_at <= CASE WHEN t.previous_kind = 'verification' THEN t.previous_at ELSE t.created_at END
  WINDOW latest_first AS (ORDER BY t.shop_id, t.id, m.created_at DESC, m.seq DESC)
),
questions AS (
  SELECT shop_id, turn_id, text AS question FROM question_candidates WHERE NOT coalesce(has_later, false)
)
SELECT
  t.shop_id,
  t.id AS turn_id,
  t.conversation_id,
  t.message_id,
  t.created_at,
  coalesce(t.intent, 'unclassified') AS intent,
  t.confidence,
  t.answer_kind,
  -- Kinds that are not answers; NOT IN over a NULL kind would be NULL, hence the coalesce.
  (NOT coalesce(t.abstained, false)
    AND coalesce(t.answer_kind, '') NOT IN ('abstain', 'verification', 'handoff')) AS answered,
  coalesce(t.abstained, false) AS abstained,
  t.abstain_reason,
  coalesce(t.needs_verification, false) AS needs_verification,
  t.helpful,
  CASE WHEN t.answer_kind = 'handoff' THEN h.reason END AS handoff_reason,
  coalesce(t.previous_abstained, false) AS follows_abstention,
  t.turn_number,
  t.conversation_turns,
  t.retrieved[1]['doc_key'] AS topic,
  t.retrieved[1]['fused'] AS topic_score,
  t.latency_ms,
  q.question
FROM ordered t
LEFT JOIN first_handoff h ON h.shop_id = t.shop_id AND h.conversation_id = t.conversation_id
LEFT JOIN questions q ON q.shop_id = t.shop_id AND q.turn_id = t.id
