#!/usr/bin/python3
"""test/bench/redis/profile.py: where the reserve() backends' CPU goes, grouped.

Reads `perf script -F ip,sym,dso` output of a `perf record -g` of the backends (stdin: one
block of stack frames per sample, innermost first, blank lines between) and prints
markdown.  Each sample goes to the group of the innermost frame that names a known piece of
PostgreSQL (XLogFlush, LockAcquireExtended, heap_insert, SPI_execute_plan, ...), so kernel
time lands where it was asked for: the fsync under XLogFlush is "WAL insert/flush", the
semaphore sleep under LockAcquireExtended is "lock manager", the socket read under
pq_getbyte is "client protocol".  The groups sum to 100% of the samples.
"""
import re
import sys

# (group, pattern on the function name); the innermost frame that matches any decides.
GROUPS = [
    ('WAL insert/flush', r'^(XLogFlush|XLogWrite|XLogInsert|XLogInsertRecord|XLogBeginInsert|XLogRegister'
     r'|issue_xlog_fsync|CopyXLogRecordToWAL|ReserveXLog|WALInsertLock|WaitXLogInsertionsToFinish'
     r'|GetXLogBuffer|AdvanceXLInsertBuffer|XLogRecordAssemble|log_heap_|XLogSetAsyncXactLSN)'),
    ('lock manager (heavyweight locks: slots, relations, xids)',
     r'^(LockAcquire|LockAcquireExtended|LockRelease|LockReleaseAll|ProcSleep|ProcLockWakeup|LockCheckConflicts'
     r'|GrantLock|UnGrantLock|CleanUpLock|SetupLockInTable|FastPathGrantRelationLock|FastPathUnGrantRelationLock'
     r'|FastPathTransferRelationLocks|ConditionalLockAcquire|LockRelationOid|UnlockRelationId|LockRelId'
     r'|XactLockTableWait|XactLockTableInsert|XactLockTableDelete|LockTuple|ConditionalXactLockTableWait'
     r'|DeadLockCheck|RemoveLocalLock|pg_advisory|LockHeldByMe|VirtualXactLock)'),
    ('commit / transaction start and end',
     r'^(CommitTransaction|CommitTransactionCommand|RecordTransactionCommit|StartTransaction'
     r'|StartTransactionCommand|ProcArrayEndTransaction|ProcArrayGroupClearXid|AtEOXact_|AtCommit_|AtStart_'
     r'|GetNewTransactionId|AssignTransactionId|TransactionIdCommitTree|TransactionIdSetTreeStatus'
     r'|GetSnapshotData|CallXactCallbacks|PreCommit_|SyncRepWaitForLSN|ResourceOwnerRelease|smgrDoPendingDeletes)'),
    ('heap/index', r'^(heap_|heapam_|_bt_|bt|index_|ExecInsertIndexTuples|ExecCheckIndexConstraints'
     r'|check_exclusion|RelationGetBufferForTuple|ReadBuffer|ReleaseBuffer|LockBuffer|MarkBufferDirty'
     r'|visibilitymap_|simple_heap_|table_tuple|HeapTupleSatisfies|toast_)'),
    ('GUC handling (the function\'s SET search_path, reported settings)',
     r'^(set_config_option|ProcessGUCArray|NewGUCNestLevel|AtEOXact_GUC|ReportChangedGUCOptions|ReportGUCOption'
     r'|fmgr_security_definer_cleanup)'),
    ('stored expressions read back (stringToNode: CHECK constraints, defaults)',
     r'^(stringToNode|nodeRead|pg_strtok|ExecRelCheck|ExecPrepareCheck|build_column_default)'),
    ('parse/plan (plan cache)', r'^(pg_parse_query|parse_analyze|pg_analyze_and_rewrite|pg_plan_quer|planner'
     r'|standard_planner|GetCachedPlan|BuildCachedPlan|RevalidateCachedQuery|CheckCachedPlan|exec_bind_message'
     r'|exec_parse_message|CreateCachedPlan|SPI_prepare|_SPI_prepare)'),
    ('executor/SPI', r'^(SPI_|_SPI_|ExecutorStart|ExecutorRun|ExecutorFinish|ExecutorEnd|standard_Executor'
     r'|Exec|InitPlan|CreateExecutorState|FreeExecutorState|slot_|tts_|ExecInterpExpr|PortalRun|PortalStart'
     r'|CreatePortal|PortalDrop|exec_execute_message|fmgr_security_definer)'),
    ('client protocol (sockets, messages)', r'^(pq_|socket_|secure_read|secure_write|ReadCommand|SocketBackend'
     r'|ReadyForQuery|EndCommand|printtup|internal_flush|be_tls)'),
]
GROUPS = [(name, re.compile(rx)) for name, rx in GROUPS]
OWN = "consistency.so (the extension's own C code)"
OTHER = 'other (memory, catalog caches, hash tables, ...)'
# PostgreSQL sleeps on a semaphore only in LWLockAcquire (WALWriteLock, the lock manager's
# partition locks, ProcArrayLock ...); libc's sem_wait keeps no frame pointer, so the caller
# is lost: these samples get a group of their own.
SEMA = 'sleeping on an LWLock (semaphore wait; which lock is not on the stack)'

FRAME = re.compile(r'^\s*([0-9a-f]+)\s+(.+?)\s+\((.*)\)\s*$')


def classify(frames):
    """frames: [(sym, dso)], innermost first."""
    for sym, dso in frames:
        name = re.sub(r'(\.isra|\.constprop|\.part|\.cold)[.0-9]*$', '', sym)
        for group, rx in GROUPS:
            if rx.search(name):
                return group
        if dso.endswith('consistency.so'):
            return OWN
    if any(sym.startswith(('__futex_abstimed_wait', '__new_sem_wait', 'sem_wait')) for sym, _ in frames):
        return SEMA
    return OTHER


def samples(stream):
    block = []
    for line in stream:
        m = FRAME.match(line)
        if m:
            block.append((m.group(2), m.group(3)))
        elif block:
            yield block
            block = []
    if block:
        yield block


def main():
    groups, kernel, leaves, n = {}, {}, {}, 0
    for frames in samples(sys.stdin):
        n += 1
        g = classify(frames)
        groups[g] = groups.get(g, 0) + 1
        if frames[0][1].startswith('[kernel'):
            kernel[g] = kernel.get(g, 0) + 1
        leaf = frames[0][0]
        leaves[leaf] = leaves.get(leaf, 0) + 1
    if n == 0:
        print('_No samples (perf could not profile the backends)._')
        return
    in_kernel = sum(kernel.values())
    print('%d samples; %.0f%% of them in the kernel (system calls, sleeping and waking).' % (n, 100 * in_kernel / n))
    print()
    print('| where (innermost PostgreSQL function on the stack) | share of backend CPU | of which in the kernel |')
    print('|---|---:|---:|')
    for g, c in sorted(groups.items(), key=lambda kv: -kv[1]):
        print('| %s | %.1f%% | %.1f%% |' % (g, 100 * c / n, 100 * kernel.get(g, 0) / n))
    print()
    print('Top functions by self time:')
    print()
    print('| function | share |')
    print('|---|---:|')
    for sym, c in sorted(leaves.items(), key=lambda kv: -kv[1])[:10]:
        print('| `%s` | %.1f%% |' % (sym, 100 * c / n))


if __name__ == '__main__':
    main()
