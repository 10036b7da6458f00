-- report: presale
-- title: Pre-sale conversations and orders
-- summary: Pre-sale conversations and whether the same customer ordered within N days.
-- definition: Over conversations that started in [from, to) whose intent is pre-sale (`intents`
--   view: product_question, stock_availability, place_order, shipping_info, payment_methods). A
--   conversation *converted* when its customer placed an order (any order, cancelled ones
--   included: the order was placed) at or after the conversation's start and within
--   $order_window_days days of it. Only conversations with a known customer can be attributed;
--   the conversion rate is over those. *Order value*: the first such order's total price.
--   Rows per intent and path, per intent (path `all`), per path (intent `all`) and a grand total.
-- param: from timestamp auto | Start of the window (inclusive), by conversation start. Default: the first conversation.
-- param: to timestamp auto | End of the window (exclusive). Default: just after the last conversation.
-- param: shop text * | A shop_id, or * for every shop.
-- param: order_window_days int 7 | Days after the conversation's start within which an order counts.
-- column: intent | Pre-sale intent; `all` on total rows.
-- column: path | ai_only, ai_then_human, human_only; `all` on total rows.
-- column: conversations | Pre-sale conversations in the window.
-- column: identified | Of which with a known customer.
-- column: converted | Identified conversations followed by an order within the window.
-- column: conversion_rate | converted ÷ identified; NULL when none is identified.
-- column: order_value | Sum of the first order's total price over converted conversations.
-- column: median_hours_to_order | Median hours from the conversation's start to that order.
-- chart: bar x=intent y=conversion_rate where path=all
WITH presale AS (
  SELECT f.shop_id, f.conversation_id, f.intent, f.path, f.customer_id, f.started_at
  FROM conversation_facts f
  JOIN intents i ON i.intent = f.intent
  WHERE i.presale
    AND f.started_at >= $from AND f.started_at < $to AND ($shop = '*' OR f.shop_id = $shop)
),
candidates AS (
  -- Each conversation with its orders in the window, the first one ranked 1 (a conversation
  -- without any keeps one row with no order). One pass: DataFusion does not materialise a
  -- CTE used twice, and conversation_facts is the expensive part.
  SELECT p.intent, p.path, p.customer_id, p.started_at,
         o.created_at AS ordered_at, o.total_price AS order_value,
         row_number() OVER (PARTITION BY p.shop_id, p.conversation_id ORDER BY o.created_at, o.id) AS n
  FROM presale p
  LEFT JOIN orders o
    ON o.shop_id = p.shop_id AND o.customer_id = p.customer_id
   AND o.created_at >= p.started_at
   AND date_part('epoch', o.created_at) - date_part('epoch', p.started_at) <= $order_window_days * 86400
)
SELECT
  coalesce(intent, 'all') AS intent,
  coalesce(path, 'all') AS path,
  count(*) AS conversations,
  count(customer_id) AS identified,
  count(ordered_at) AS converted,
  round(CAST(count(ordered_at) AS DOUBLE) / nullif(count(customer_id), 0), 4) AS conversion_rate,
  coalesce(sum(order_value), 0) AS order_value,
  round(median(date_part('epoch', ordered_at) - date_part('epoch', started_at)) / 3600.0, 1) AS median_hours_to_order
FROM candidates
WHERE n = 1
GROUP BY GROUPING SETS ((intent, path), (intent), (path), ())
ORDER BY CASE WHEN intent = 'all' THEN 0 ELSE 1 END, intent, CASE WHEN path = 'all' THEN 0 ELSE 1 END, path
