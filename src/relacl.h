/*
 * relacl.h — the privilege check of C functions that take an index by
 * regclass and read its table's rows (codevec_bm25_topk,
 * codevec_bm25_blocks_topk, codevec_gpu_routing), as the executor would for
 * a scan: SELECT on the index's table, else 42501 (aclcheck_error).
 */
#ifndef CODEVEC_RELACL_H
#define CODEVEC_RELACL_H

#include "catalog/index.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

/*
 * RequireIndexTableSelect: ERROR 42501 unless the current user may SELECT
 * the table that index indexOid belongs to. An OID that is not an index
 * passes here and is refused by the caller's own shape checks.
 */
static inline void
RequireIndexTableSelect(Oid indexOid)
{
	Oid			heapOid = IndexGetRelation(indexOid, true);
	AclResult	aclresult;

	if (!OidIsValid(heapOid))
		return;
	aclresult = pg_class_aclcheck(heapOid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, get_relkind_objtype(get_rel_relkind(heapOid)),
					   get_rel_name(heapOid));
}

#endif							/* CODEVEC_RELACL_H */
