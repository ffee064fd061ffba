-- The remote messages already created for an outbound event, as a JSON
-- list, so that a send split into several remote messages resumes at the
-- right part after a retry or a crash.
ALTER TABLE outbound_event ADD COLUMN progress TEXT NOT NULL DEFAULT '';
