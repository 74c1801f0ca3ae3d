-- A registry as eir made it before Alembic (schema version 1): main at 5d6a521, create_schema's DDL
-- on PostgreSQL (SQLAlchemy's create_all), then its version row. tests/test_migrations.py adopts it.
CREATE TABLE equipment (
	imei VARCHAR(14) NOT NULL, 
	list VARCHAR(8), 
	reason VARCHAR, 
	source VARCHAR NOT NULL, 
	stolen BOOLEAN NOT NULL, 
	stolen_reason VARCHAR, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (imei)
);
CREATE TABLE tac (
	tac VARCHAR(8) NOT NULL, 
	brand VARCHAR, 
	model VARCHAR, 
	device_type VARCHAR, 
	PRIMARY KEY (tac)
);
CREATE TABLE history (
	id SERIAL NOT NULL, 
	imei VARCHAR(14) NOT NULL, 
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	field VARCHAR(8) NOT NULL, 
	"old" VARCHAR, 
	"new" VARCHAR, 
	reason VARCHAR, 
	source VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_history_imei ON history (imei);
CREATE TABLE sighting (
	imei VARCHAR(14) NOT NULL, 
	imsi VARCHAR(15) NOT NULL, 
	msisdn VARCHAR(15), 
	first_seen TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	last_seen TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	interface VARCHAR(8), 
	PRIMARY KEY (imei, imsi)
);
CREATE INDEX ix_sighting_imsi_msisdn ON sighting (imsi) WHERE msisdn IS NOT NULL;
CREATE TABLE notice (
	id SERIAL NOT NULL, 
	imei VARCHAR(14) NOT NULL, 
	imsi VARCHAR(15) NOT NULL, 
	msisdn VARCHAR(15), 
	event VARCHAR(16) NOT NULL, 
	deadline TIMESTAMP WITHOUT TIME ZONE, 
	reason VARCHAR, 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	exported_at TIMESTAMP WITHOUT TIME ZONE, 
	PRIMARY KEY (id), 
	CONSTRAINT notice_once UNIQUE (imei, imsi, event)
);
CREATE TABLE subscriber (
	id SERIAL NOT NULL, 
	imsi VARCHAR(15) NOT NULL, 
	msisdn VARCHAR(15) NOT NULL, 
	valid_from TIMESTAMP WITHOUT TIME ZONE, 
	valid_until TIMESTAMP WITHOUT TIME ZONE, 
	source VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_subscriber_msisdn ON subscriber (msisdn, valid_until);
CREATE INDEX ix_subscriber_imsi ON subscriber (imsi, valid_until);
CREATE TABLE pairing (
	id SERIAL NOT NULL, 
	imei VARCHAR(14) NOT NULL, 
	imsi VARCHAR(15), 
	msisdn VARCHAR(15), 
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT pairing_has_identity CHECK (imsi IS NOT NULL OR msisdn IS NOT NULL), 
	FOREIGN KEY(imei) REFERENCES equipment (imei)
);
CREATE INDEX ix_pairing_imei ON pairing (imei);
CREATE TABLE eir_schema (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO eir_schema (id, version) VALUES (1, 1);
