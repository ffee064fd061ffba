-- Outcomes of the Matrix users' own messages that were decided (sent,
-- delivered, failed) but are not shown in the room yet: a status event, the
-- bridge bot's read receipt, a failure notice. A row is written in the same
-- commit that decides the outcome and deleted once it is shown, so a crash in
-- between delays what the sender sees but never loses it.
CREATE TABLE report_outbox (
	event_id        TEXT    PRIMARY KEY,
	room_id         TEXT    NOT NULL,
	portal_id       TEXT    NOT NULL,
	portal_receiver TEXT    NOT NULL,
	state           TEXT    NOT NULL,
	delivery_will_follow BOOLEAN NOT NULL DEFAULT FALSE,
	message         TEXT    NOT NULL DEFAULT '',
	reason          TEXT    NOT NULL DEFAULT '',
	internal_error  TEXT    NOT NULL DEFAULT '',
	undelivered     BOOLEAN NOT NULL DEFAULT FALSE,
	event_ts        BIGINT  NOT NULL
);
