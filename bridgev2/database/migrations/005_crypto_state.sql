-- End-to-bridge encryption: the bridge bot's Olm account, Olm and Megolm
-- sessions, device lists and the rest of the crypto machine's state. One
-- row per object; kind says which (account, olm_session, megolm_inbound,
-- megolm_outbound, device_list, ...), key identifies it within its kind and
-- value is its JSON, whose key material is pickled with encryption.pickle_key.
-- Every change is committed before the machine goes on, so a message never
-- leaves the bridge under a session state the database does not have.
CREATE TABLE crypto_state (
	kind  TEXT NOT NULL,
	key   TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (kind, key)
);
