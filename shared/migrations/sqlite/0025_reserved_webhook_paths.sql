-- `/webhook/whatsapp` and `/webhook/sms` now belong to the WhatsApp and Twilio
-- connectors (issue #22), and the API refuses new webhooks there. A user
-- webhook that already had one of these paths would be shadowed by the
-- connector's route without a word; it moves to `<path>-webhook-<id>` (shown
-- in its `url`), unless that path is somehow taken too.
UPDATE webhooks SET path = path || '-webhook-' || CAST(id AS TEXT)
WHERE path IN ('whatsapp', 'sms')
  AND NOT EXISTS (
    SELECT 1 FROM webhooks other WHERE other.path = webhooks.path || '-webhook-' || CAST(webhooks.id AS TEXT)
  );
