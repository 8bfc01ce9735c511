/* codevec--0.1.0--0.2.0.sql: what 0.2.0 adds to 0.1.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION codevec UPDATE TO '0.2.0'" to load this file. \quit

