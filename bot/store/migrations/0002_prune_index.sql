-- feedbot schema 2: pruning seen keys by age reads (feed_url, seen_at), and
-- dropping a feed's deliveries on unsubscribe or a move reads outbox by feed.
CREATE INDEX seen_age ON seen (feed_url, seen_at);
CREATE INDEX outbox_feed ON outbox (feed_url);
