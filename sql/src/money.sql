-- Currencies and how amounts are written.

-- The currencies the extension ships.  They come with every install, so a
-- dump leaves them out and keeps only those added since.
CREATE FUNCTION shipped_currencies(OUT code char(3), OUT minor_units smallint, OUT name text)
    RETURNS SETOF record
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
    AS $$ VALUES ('AED'::char(3), 2::smallint, 'UAE Dirham'::text), ('AUD', 2, 'Australian Dollar'),
                 ('BGN', 2, 'Bulgarian Lev'), ('BHD', 3, 'Bahraini Dinar'),
                 ('BRL', 2, 'Brazilian Real'), ('CAD', 2, 'Canadian Dollar'),
                 ('CHF', 2, 'Swiss Franc'), ('CLP', 0, 'Chilean Peso'), ('CNY', 2, 'Yuan Renminbi'),
                 ('CZK', 2, 'Czech Koruna'), ('DKK', 2, 'Danish Krone'), ('EUR', 2, 'Euro'),
                 ('GBP', 2, 'Pound Sterling'), ('HKD', 2, 'Hong Kong Dollar'), ('HUF', 2, 'Forint'),
                 ('IDR', 2, 'Rupiah'), ('ILS', 2, 'New Israeli Sheqel'), ('INR', 2, 'Indian Rupee'),
                 ('ISK', 0, 'Iceland Krona'), ('JOD', 3, 'Jordanian Dinar'), ('JPY', 0, 'Yen'),
                 ('KRW', 0, 'Won'), ('KWD', 3, 'Kuwaiti Dinar'), ('MXN', 2, 'Mexican Peso'),
                 ('MYR', 2, 'Malaysian Ringgit'), ('NOK', 2, 'Norwegian Krone'),
                 ('NZD', 2, 'New Zealand Dollar'), ('OMR', 3, 'Rial Omani'),
                 ('PHP', 2, 'Philippine Peso'), ('PLN', 2, 'Zloty'), ('RON', 2, 'Romanian Leu'),
                 ('SAR', 2, 'Saudi Riyal'), ('SEK', 2, 'Swedish Krona'),
                 ('SGD', 2, 'Singapore Dollar'), ('THB', 2, 'Baht'), ('TND', 3, 'Tunisian Dinar'),
                 ('TRY', 2, 'Turkish Lira'), ('TWD', 2, 'New Taiwan Dollar'), ('UAH', 2, 'Hryvnia'),
                 ('USD', 2, 'US Dollar'), ('VND', 0, 'Dong'), ('ZAR', 2, 'Rand') $$;
COMMENT ON FUNCTION shipped_currencies() IS
    'The ISO 4217 currencies the extension installs, with their minor units; pg_dump leaves these rows of recovery.currencies out.';
GRANT EXECUTE ON FUNCTION shipped_currencies() TO recovery_viewer, recovery_auditor;

CREATE TABLE currencies (
    code        char(3) PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
    minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4),
    name        text NOT NULL
);
INSERT INTO currencies (code, minor_units, name)
    SELECT s.code, s.minor_units, s.name FROM shipped_currencies() s;
COMMENT ON TABLE currencies IS 'ISO 4217 currencies that amounts may be in, with their minor units.';
GRANT SELECT ON currencies TO recovery_viewer, recovery_auditor;
SELECT pg_catalog.pg_extension_config_dump('currencies',
    'WHERE code NOT IN (SELECT s.code FROM recovery.shipped_currencies() s)');

CREATE FUNCTION format_amount(amount bigint, currency text, locale text) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'recovery_format_amount_sql';
COMMENT ON FUNCTION format_amount(bigint, text, text) IS
    'Minor units written as the locale writes money: £1,234.56 (en-GB), 1.234,56 € (de-DE).';
GRANT EXECUTE ON FUNCTION format_amount(bigint, text, text) TO recovery_viewer, recovery_auditor;
