-- A registry as eir made it before Alembic (schema version 1): main at 5d6a521, create_schema,
-- dumped with sqlite3's iterdump. tests/test_migrations.py adopts it.
CREATE TABLE eir_schema (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "eir_schema" VALUES(1,1);
CREATE TABLE equipment (
	imei VARCHAR(14) NOT NULL, 
	list VARCHAR(8), 
	reason VARCHAR, 
	source VARCHAR NOT NULL, 
	stolen BOOLEAN NOT NULL, 
	stolen_reason VARCHAR, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (imei)
)
 WITHOUT ROWID

;
CREATE TABLE history (
	id INTEGER NOT NULL, 
	imei VARCHAR(14) NOT NULL, 
	at DATETIME NOT NULL, 
	field VARCHAR(8) NOT NULL, 
	old VARCHAR, 
	new VARCHAR, 
	reason VARCHAR, 
	source VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE notice (
	id INTEGER NOT NULL, 
	imei VARCHAR(14) NOT NULL, 
	imsi VARCHAR(15) NOT NULL, 
	msisdn VARCHAR(15), 
	event VARCHAR(16) NOT NULL, 
	deadline DATETIME, 
	reason VARCHAR, 
	created_at DATETIME NOT NULL, 
	exported_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT notice_once UNIQUE (imei, imsi, event)
);
CREATE TABLE pairing (
	id INTEGER NOT NULL, 
	imei VARCHAR(14) NOT NULL, 
	imsi VARCHAR(15), 
	msisdn VARCHAR(15), 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT pairing_has_identity CHECK (imsi IS NOT NULL OR msisdn IS NOT NULL), 
	FOREIGN KEY(imei) REFERENCES equipment (imei)
);
CREATE TABLE sighting (
	imei VARCHAR(14) NOT NULL, 
	imsi VARCHAR(15) NOT NULL, 
	msisdn VARCHAR(15), 
	first_seen DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	interface VARCHAR(8), 
	PRIMARY KEY (imei, imsi)
)
 WITHOUT ROWID

;
CREATE TABLE subscriber (
	id INTEGER NOT NULL, 
	imsi VARCHAR(15) NOT NULL, 
	msisdn VARCHAR(15) NOT NULL, 
	valid_from DATETIME, 
	valid_until DATETIME, 
	source VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE tac (
	tac VARCHAR(8) NOT NULL, 
	brand VARCHAR, 
	model VARCHAR, 
	device_type VARCHAR, 
	PRIMARY KEY (tac)
);
CREATE INDEX ix_history_imei ON history (imei);
CREATE INDEX ix_sighting_imsi_msisdn ON sighting (imsi) WHERE msisdn IS NOT NULL;
CREATE INDEX ix_subscriber_msisdn ON subscriber (msisdn, valid_until);
CREATE INDEX ix_subscriber_imsi ON subscriber (imsi, valid_until);
CREATE INDEX ix_pairing_imei ON pairing (imei);
