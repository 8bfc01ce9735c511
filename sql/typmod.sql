-- codevec(n): the typmod
CREATE TABLE t_typmod (v codevec(3));
INSERT INTO t_typmod VALUES ('[1,2,3]');
INSERT INTO t_typmod VALUES ('[1,2]');
INSERT INTO t_typmod VALUES ('[1,2,3,4]');
INSERT INTO t_typmod VALUES (ARRAY[1,2,3]);
INSERT INTO t_typmod VALUES (ARRAY[1,2]::real[]);
UPDATE t_typmod SET v = '[1,2]';
SELECT * FROM t_typmod;
\d t_typmod
SELECT '[1,2,3]'::codevec(3);
SELECT '[1,2]'::codevec(3);
SELECT '[1,2,3]'::codevec::codevec(3);
SELECT '[1,2,3]'::codevec::codevec(2);
SELECT '[1]'::codevec(1), codevec_dims('[1]'::codevec(1));
CREATE TABLE t_typmod_bad (v codevec(0));
CREATE TABLE t_typmod_bad (v codevec(16001));
CREATE TABLE t_typmod_bad (v codevec(3, 4));
CREATE TABLE t_typmod_max (v codevec(16000));
\d t_typmod_max
-- the typmod survives in views and is shown by format_type
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 't_typmod'::regclass AND attname = 'v';
DROP TABLE t_typmod, t_typmod_max;
