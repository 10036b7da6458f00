-- fragment: unanswered_turns
-- summary: Turns where the store's knowledge failed the shopper, with the kind of failure.
-- definition: A turn is *unanswered* when it abstained, when it answered with a confidence below
--   $confidence_threshold, or when it handed off for missing knowledge (reason low_confidence or
--   missing_data) without following an abstention, so that "I don't know" followed by "let me
--   get you a person" counts once. Sensitive-intent and explicitly requested handoffs are not
--   knowledge failures and are left out. Reports include this with `-- include: unanswered_turns`.
SELECT
  tf.*,
  CASE
    WHEN tf.abstained THEN 'abstained'
    WHEN tf.answered THEN 'low_confidence'
    ELSE 'escalated'
  END AS unanswered_kind
FROM turn_facts tf
WHERE ($shop = '*' OR tf.shop_id = $shop)
  AND (tf.abstained
       OR (tf.answered AND tf.confidence < $confidence_threshold)
       OR (tf.handoff_reason IN ('low_confidence', 'missing_data') AND NOT tf.follows_abstention))
