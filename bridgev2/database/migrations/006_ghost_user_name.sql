-- The name a Matrix user gave a contact (the set-name command, or renaming
-- the contact's DM room). It wins over every name the network provides.
ALTER TABLE ghost ADD COLUMN user_name TEXT NOT NULL DEFAULT '';
