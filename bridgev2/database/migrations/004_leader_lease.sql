-- The leader lease: several bridge processes on one PostgreSQL database
-- form one bridge, and only the holder of this row delivers journalled work.
-- epoch grows with every change of holder; delivery writes check it, so a
-- process that lost the lease cannot act on the journal (fencing).
CREATE TABLE leader_lease (
	name       TEXT   PRIMARY KEY,
	holder     TEXT   NOT NULL,
	epoch      BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
