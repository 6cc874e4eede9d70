#!/usr/bin/python3
"""test/bench/redis/profile.py: where the reserve() backends' CPU goes, grouped.

Reads `perf script -F ip,sym,dso` output of a `perf record -g` of the backends (stdin: one
block of stack frames per sample, innermost first, blank lines between) and prints
markdown.  Each sample goes to the group of the innermost frame that names a known piece of
PostgreSQL (XLogFlush, LockAcquireExtended, heap_insert, SPI_execute_plan, ...), so kernel
time lands where it was asked for: the fsync under XLogFlush is "WAL insert/flush", the
semaphore sleep under LockAcquireExtended is "lock manager", the socket read under
pq_getbyte is "client protocol".  The groups sum to 100% of the samples.

--batches (for reserve_now()) first prints what the backends were doing for the batches that
share commits (src/inventory_combine.c), by the function named anywhere on the stack: a
leader applying a batch (lead_batch), a committing leader settling one (settle_batch: waking
its callers), a caller waiting for its batch (WaitLatch called by inv_reserve_now), or
none of these: each call's own statement, transaction and protocol.
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


# A latch wait or wake-up called by the extension itself (reserve_now()'s callers waiting for
# their batch, a leader waking them): named for what it is, not as the extension's own code.
LATCH = "latch sleep and wake-up called by the extension (reserve_now()'s batches)"


def classify(frames):
    """frames: [(sym, dso)], innermost first."""
    for i, (sym, dso) in enumerate(frames):
        name = re.sub(r'(\.isra|\.constprop|\.part|\.cold)[.0-9]*$', '', sym)
        if name in ('WaitLatch', 'SetLatch', 'kill', '__GI_kill', '__GI___kill'):
            # SetLatch wakes a sleeping backend with kill(); unwinding may lose SetLatch.
            # The caller is the next frame with a file (inlined frames have none).
            callers = [d for f, d in frames[i + 1:] if f != '[unknown]' and d != 'inlined']
            if callers and callers[0].endswith('consistency.so'):
                return LATCH
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


BATCH_ROLES = [
    ('applying a batch as its leader (`lead_batch`)', 'lead_batch'),
    ('settling a batch at its commit, waking its callers (`settle_batch`)', 'settle_batch'),
    ('waiting for its batch (`WaitLatch` in `inv_reserve_now`)', 'wait'),
]
OWN_CALL = "the call's own statement, transaction and protocol (none of these)"


def batch_role(frames):
    names = [re.sub(r'(\.isra|\.constprop|\.part|\.cold)[.0-9]*$', '', sym) for sym, _ in frames]
    for label, fn in BATCH_ROLES:
        if fn == 'wait':
            for i, name in enumerate(names[:-1]):
                if name == 'WaitLatch' and names[i + 1] == 'inv_reserve_now':
                    return label
        elif fn in names:
            return label
    return OWN_CALL


def main():
    batches = '--batches' in sys.argv[1:]
    groups, kernel, leaves, roles, n = {}, {}, {}, {}, 0
    for frames in samples(sys.stdin):
        n += 1
        if batches:
            r = batch_role(frames)
            roles[r] = roles.get(r, 0) + 1
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
    if batches:
        print('| what the backend was doing | share of backend CPU |')
        print('|---|---:|')
        for label in [lbl for lbl, _ in BATCH_ROLES] + [OWN_CALL]:
            print('| %s | %.1f%% |' % (label, 100 * roles.get(label, 0) / n))
        print()
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
