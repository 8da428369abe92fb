-- feedbot schema 3: the feeds a process holds a lease on, found without a
-- scan. record_polls checks lease_owner = $owner on a whole batch in one
-- statement; without this index the planner, seeing lease_owner mostly NULL,
-- filtered every feed row (18 ms a batch at 100,000 feeds, growing with them).
CREATE INDEX feeds_leased ON feeds (lease_owner) WHERE lease_owner IS NOT NULL;
