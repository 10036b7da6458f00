-- view: intents
-- title: Intents
-- summary: The canonical intents: what each needs (system of record, verified identity) and whether a person is required.
-- definition: The reference list every classifier output and report uses.
--   `human_required` is the blueprint answer to "can automation finish this?": `no` (the
--   assistant can answer from data or knowledge), `sometimes` (it can explain, but the change
--   itself needs a person or an app), `always` (sensitive: payments, complaints, explicit asks).
-- column: intent | Canonical intent id.
-- column: meaning | What the shopper wants.
-- column: needs_verification | Whether answering reveals order or account data, so identity must be verified first.
-- column: system_of_record | The lake tables that hold the answer.
-- column: human_required | no, sometimes or always (see the definition).
-- column: presale | Whether the question is asked before buying (used by the `presale` report).
SELECT * FROM (VALUES
  ('order_status',            'where is my order, tracking, delivery date',             true,  'orders, fulfillments',                   'no',        false),
  ('change_order',            'change items, size or quantity of a placed order',       true,  'orders, order_lines',                    'sometimes', false),
  ('change_shipping_address', 'change or set the address of an order',                  true,  'orders, fulfillments',                   'sometimes', false),
  ('cancel_order',            'cancel a placed order',                                  true,  'orders, fulfillments',                   'sometimes', false),
  ('refund_request',          'money back for an order',                                true,  'orders, refunds, policies',              'sometimes', false),
  ('refund_status',           'where is my refund',                                     true,  'refunds, returns',                       'no',        false),
  ('return_exchange',         'return or exchange an item, eligibility',                true,  'orders, fulfillments, returns, policies','no',        false),
  ('refund_policy',           'general return, refund and exchange policy',             false, 'policies',                               'no',        false),
  ('cancellation_policy',     'cancellation rules and fees',                            false, 'policies',                               'no',        false),
  ('shipping_info',           'delivery options, times, costs, countries',              false, 'policies, articles',                     'no',        true),
  ('payment_methods',         'accepted payment methods',                               false, 'policies, articles',                     'no',        true),
  ('payment_issue',           'failed payment, double or wrong charge',                 true,  'orders, refunds',                        'always',    false),
  ('invoice',                 'get or check an invoice',                                true,  'orders',                                 'no',        false),
  ('account_help',            'create, edit, delete or recover an account',             false, 'articles',                               'sometimes', false),
  ('newsletter',              'subscribe or unsubscribe',                               false, 'articles',                               'no',        false),
  ('product_question',        'size, fit, material, care, compatibility, specs',        false, 'products, variants, articles',           'no',        true),
  ('stock_availability',      'is it in stock, when is it back',                        false, 'variants, inventory_levels',             'no',        true),
  ('place_order',             'how to order, pre-sale help',                            false, 'products, articles',                     'no',        true),
  ('complaint',               'complaint, damaged or wrong item',                       true,  'orders, fulfillments',                   'always',    false),
  ('feedback',                'review or suggestion',                                   false, '(none)',                                 'no',        false),
  ('talk_to_human',           'asks for a person',                                      false, '(none)',                                 'always',    false),
  ('out_of_scope',            'none of the above',                                      false, '(none)',                                 'sometimes', false)
) AS intents(intent, meaning, needs_verification, system_of_record, human_required, presale)
