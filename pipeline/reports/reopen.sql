-- report: reopen
-- title: Reopens and durable resolution
-- summary: Reopen and repeat-contact rate within N days, and durable resolution rate, by intent and resolution path.
-- definition: Over conversations that started in [from, to). A resolved conversation is
--   *reopened* when the same customer contacts the shop again about the same intent or the same
--   order within $reopen_days days of its end (inclusive: a contact exactly N days later counts);
--   later contacts are looked for in the whole lake, not only inside the window, so the last N
--   days of data under-count reopens. A conversation is a *repeat contact* when it started within
--   N days of the end of the same customer's previous conversation on the same intent or order.
--   Anonymous conversations (no customer) can be neither. *Durable resolution rate*: resolved and
--   not reopened ÷ all conversations.
-- param: from timestamp auto | Start of the window (inclusive), by conversation start. Default: the first conversation.
-- param: to timestamp auto | End of the window (exclusive). Default: just after the last conversation.
-- param: shop text * | A shop_id, or * for every shop.
-- param: reopen_days int 7 | The reopen window N, in days.
-- column: intent | Conversation intent; `all` on total rows.
-- column: path | ai_only, ai_then_human, human_only; `all` on total rows.
-- column: conversations | Conversations that started in the window.
-- column: resolved | Conversations resolved (automated or by a person).
-- column: reopened | Resolved conversations reopened within N days.
-- column: reopen_rate | reopened ÷ resolved; NULL when nothing was resolved.
-- column: repeat_contacts | Conversations that repeat a contact on the same topic within N days.
-- column: repeat_contact_rate | repeat_contacts ÷ conversations.
-- column: durable_resolution_rate | (resolved − reopened) ÷ conversations.
-- chart: bar x=path y=reopen_rate,repeat_contact_rate,durable_resolution_rate where intent=all
SELECT
  coalesce(intent, 'all') AS intent,
  coalesce(path, 'all') AS path,
  count(*) AS conversations,
  count(CASE WHEN resolved THEN 1 END) AS resolved,
  count(CASE WHEN resolved AND next_contact_gap_seconds <= $reopen_days * 86400 THEN 1 END) AS reopened,
  round(CAST(count(CASE WHEN resolved AND next_contact_gap_seconds <= $reopen_days * 86400 THEN 1 END) AS DOUBLE)
        / nullif(count(CASE WHEN resolved THEN 1 END), 0), 4) AS reopen_rate,
  count(CASE WHEN previous_contact_gap_seconds <= $reopen_days * 86400 THEN 1 END) AS repeat_contacts,
  round(CAST(count(CASE WHEN previous_contact_gap_seconds <= $reopen_days * 86400 THEN 1 END) AS DOUBLE) / nullif(count(*), 0), 4)
    AS repeat_contact_rate,
  round(CAST(count(CASE WHEN resolved AND NOT coalesce(next_contact_gap_seconds <= $reopen_days * 86400, false) THEN 1 END) AS DOUBLE)
        / nullif(count(*), 0), 4) AS durable_resolution_rate
FROM conversation_facts
WHERE started_at >= $from AND started_at < $to AND ($shop = '*' OR shop_id = $shop)
GROUP BY GROUPING SETS ((intent, path), (path), ())
ORDER BY CASE WHEN intent = 'all' THEN 0 ELSE 1 END, intent, CASE WHEN path = 'all' THEN 1 ELSE 0 END, path
