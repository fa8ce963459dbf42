-- recipients: what user-events said about each user, to address messages.
CREATE TABLE recipients (
	user_id    TEXT PRIMARY KEY,
	email      TEXT NOT NULL,
	name       TEXT NOT NULL,
	status     TEXT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- notifications: the mailbox, one row per message sent or failed.
CREATE TABLE notifications (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL,
	channel      TEXT NOT NULL,
	template     TEXT NOT NULL,
	recipient    TEXT NOT NULL,
	subject      TEXT NOT NULL,
	body         TEXT NOT NULL,
	subject_type TEXT NOT NULL,
	subject_id   TEXT NOT NULL,
	status       TEXT NOT NULL,
	attempts     BIGINT NOT NULL,
	error        TEXT NOT NULL,
	event_id     TEXT NOT NULL,
	created_at   BIGINT NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, created_at);
CREATE INDEX notifications_created ON notifications (created_at);
