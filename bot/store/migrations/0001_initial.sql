-- feedbot schema 1: the tables of the work (see bot/store/postgres.py).
-- Times are unix seconds (double precision), as the dataclasses hold them.

CREATE TABLE chats (
    id        bigint PRIMARY KEY,
    kind      text NOT NULL,
    title     text NOT NULL DEFAULT '',
    username  text,
    active    boolean NOT NULL DEFAULT true
);

-- The schedule lives here: next_poll and the lease are columns (claimed with
-- FOR UPDATE SKIP LOCKED); the rest of Feed is one jsonb document.
CREATE TABLE feeds (
    url          text PRIMARY KEY,
    id           bigserial UNIQUE,
    next_poll    double precision NOT NULL DEFAULT 0,
    status       text NOT NULL DEFAULT 'ok',
    lease_owner  text,
    lease_until  double precision,
    state        jsonb NOT NULL DEFAULT '{}'
);
-- What claim_due_feeds and next_poll_at read: due feeds, earliest first.
CREATE INDEX feeds_due ON feeds (next_poll) WHERE status <> 'gone';

CREATE TABLE subscriptions (
    seq       bigserial UNIQUE,
    chat_id   bigint NOT NULL,
    feed_url  text NOT NULL,
    created   double precision NOT NULL,
    style     jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (chat_id, feed_url)
);
CREATE INDEX subscriptions_feed ON subscriptions (feed_url);

CREATE TABLE seen (
    feed_url  text NOT NULL,
    key       text NOT NULL,
    seen_at   double precision NOT NULL,
    PRIMARY KEY (feed_url, key)
);

-- An entry queued for many chats is stored once, by codec.entry_digest; rows
-- no outbox row refers to are deleted by the transaction that drops the last.
CREATE TABLE entries (
    digest  text PRIMARY KEY,
    body    jsonb NOT NULL
);

CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    chat_id       bigint NOT NULL,
    feed_url      text NOT NULL,
    entry_digest  text REFERENCES entries (digest),
    -- Entry.id, so that moving deliveries can drop duplicates without reading bodies.
    entry_id      text,
    notice        jsonb,
    not_before    double precision NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 0,
    sent_parts    integer NOT NULL DEFAULT 0,
    created       double precision NOT NULL,
    CHECK ((entry_digest IS NULL) <> (notice IS NULL))
);
CREATE INDEX outbox_chat ON outbox (chat_id, seq);
CREATE INDEX outbox_entry ON outbox (entry_digest);
