import Foundation

/// Faults a test can ask a real `gift` process for through its environment, in one place: the crash and
/// failure paths (resume after a kill, one rank failing) are exercised in real processes, not simulated.
/// Nothing here acts unless its variable is set.
///   GIFT_FAULT_RANK=r GIFT_FAULT_STEP=s   rank r fails (an error, the job aborts) at optimizer step s (from 1)
///   GIFT_CRASH_IN_CHECKPOINT=s            SIGKILL while checkpoint s is complete on disk but not yet renamed
public enum FaultInjection {
    static let environment = ProcessInfo.processInfo.environment
    static let failingRank = Int(environment["GIFT_FAULT_RANK"] ?? "") ?? -1
    static let failingStep = Int(environment["GIFT_FAULT_STEP"] ?? "")
    static let crashCheckpoint = Int(environment["GIFT_CRASH_IN_CHECKPOINT"] ?? "")

    /// Before optimizer step `step` (from 0) on `rank`.
    static func beforeStep(_ step: Int, rank: Int) throws {
        if rank == failingRank, let s = failingStep, step == s - 1 {
            throw GiftError(.data, "injected fault at step \(step + 1) (GIFT_FAULT_RANK/GIFT_FAULT_STEP)")
        }
    }

    /// Checkpoint `step`'s files are written and synced, its folder not yet renamed into place.
    static func checkpointWritten(step: Int) {
        if crashCheckpoint == step { kill(getpid(), SIGKILL) }
    }
}
