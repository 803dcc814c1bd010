#include "gift_mpi.h"
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

// Every count and displacement an MPI call takes is an int. Each entry point below takes size_t counts
// and offsets and a `limit` (at most INT_MAX; 0 means INT_MAX), and never passes MPI an int argument above
// `limit`: larger transfers go in rounds. Tests lower `limit` to a few hundred to run the rounds.
static size_t clamp_limit(size_t limit) { return limit == 0 || limit > INT_MAX ? INT_MAX : limit; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
// Floats per rank per round when a reduce-scatter or allgather needs rounds: a staging buffer of
// ranks × this many floats (16 MiB per rank) is copied through, so it is kept moderate.
static const size_t ROUND_FLOATS = (size_t)1 << 22;
// Collective calls made so far (diagnostic: `gift mpi-check` shows how many rounds a transfer took).
static long calls;
long gift_mpi_calls(void) { return calls; }

int gift_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL ||
           getenv("PMI_RANK") != NULL;
}

int gift_mpi_init(void) {
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) return 1;
    // Errors come back as codes so gift can name the rank and the cause before aborting all ranks.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    return provided >= MPI_THREAD_SERIALIZED ? 0 : 2;
}

int gift_mpi_finalize(void) { return MPI_Finalize(); }

int gift_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int gift_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }

int gift_mpi_allreduce_sum_f32(float *buf, size_t count, size_t piece, size_t limit) {
    piece = min_sz(piece == 0 ? INT_MAX : piece, clamp_limit(limit));
    for (size_t off = 0; off < count; off += piece) {
        size_t n = min_sz(count - off, piece);
        calls++; int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

int gift_mpi_allreduce_sum_f64(double *buf, size_t count, size_t limit) {
    limit = clamp_limit(limit);
    for (size_t off = 0; off < count; off += limit) {
        size_t n = min_sz(count - off, limit);
        calls++; int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

// Round k moves element [k·R, (k+1)·R) of every rank's shard (R = the round size), clipped to the shard.
static size_t round_count(size_t shard, size_t k, size_t R) { return shard > k * R ? min_sz(shard - k * R, R) : 0; }

int gift_mpi_reduce_scatter_sum_f32(const float *send, float *recv, const size_t *counts, size_t limit) {
    int ranks = gift_mpi_size();
    limit = clamp_limit(limit);
    size_t most = 0;
    for (int r = 0; r < ranks; r++) most = counts[r] > most ? counts[r] : most;
    int *c = malloc(sizeof(int) * (size_t)ranks);
    if (!c) return -1;
    int rc = 0;
    if (most <= limit) {   // one call: the shards lie back to back in `send`, as MPI wants them
        for (int r = 0; r < ranks; r++) c[r] = (int)counts[r];
        calls++; rc = MPI_Reduce_scatter(send, recv, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        free(c);
        return rc;
    }
    // In rounds, each rank's piece of the round is no longer next to the next rank's: stage them.
    size_t R = min_sz(limit, ROUND_FLOATS);
    float *stage = malloc(sizeof(float) * R * (size_t)ranks);
    if (!stage) { free(c); return -1; }
    for (size_t k = 0; k * R < most && rc == MPI_SUCCESS; k++) {
        size_t at = 0, lo = 0;
        for (int r = 0; r < ranks; r++) {
            size_t n = round_count(counts[r], k, R);
            if (n) memcpy(stage + at, send + lo + k * R, n * sizeof(float));
            c[r] = (int)n; at += n; lo += counts[r];
        }
        calls++; rc = MPI_Reduce_scatter(stage, recv + k * R, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    free(stage); free(c);
    return rc;
}

static unsigned short to_bf16(float f) {
    unsigned int u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);   // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
static float from_bf16(unsigned short b) { unsigned int u = (unsigned int)b << 16; float f; memcpy(&f, &u, 4); return f; }

// The largest of `ranks` counts, and the floats per rank per round of a staged collective: at most R
// values of each rank's shard in a round, so the displacements (≤ ranks·R) stay within `limit`.
static size_t largest(const size_t *counts, int ranks) {
    size_t most = 0;
    for (int r = 0; r < ranks; r++) most = counts[r] > most ? counts[r] : most;
    return most;
}
static size_t staged_round(size_t limit, int ranks) {
    size_t R = min_sz(limit / (size_t)ranks, ROUND_FLOATS);
    return R == 0 ? 1 : R;
}

size_t gift_mpi_bf16_round(size_t limit, int ranks) { return staged_round(clamp_limit(limit), ranks < 1 ? 1 : ranks); }

int gift_mpi_reduce_scatter_sum_bf16(const float *send, float *recv, const size_t *counts, size_t limit) {
    int ranks = gift_mpi_size(), me = gift_mpi_rank();
    limit = clamp_limit(limit);
    size_t most = largest(counts, ranks), R = staged_round(limit, ranks);
    int *sc = malloc(sizeof(int) * 4 * (size_t)ranks);
    unsigned short *out = malloc(sizeof(unsigned short) * R * (size_t)ranks);
    unsigned short *in = malloc(sizeof(unsigned short) * R * (size_t)ranks);
    if (!sc || !out || !in) { free(sc); free(out); free(in); return -1; }
    int *sd = sc + ranks, *rc_ = sc + 2 * ranks, *rd = sc + 3 * ranks;
    int rc = 0;
    for (size_t k = 0; k * R < most && rc == MPI_SUCCESS; k++) {
        size_t at = 0, lo = 0, mine = round_count(counts[me], k, R);
        for (int r = 0; r < ranks; r++) {
            size_t n = round_count(counts[r], k, R);
            for (size_t i = 0; i < n; i++) out[at + i] = to_bf16(send[lo + k * R + i]);
            sc[r] = (int)n; sd[r] = (int)at; rc_[r] = (int)mine; rd[r] = (int)((size_t)r * mine);
            at += n; lo += counts[r];
        }
        calls++;
        rc = MPI_Alltoallv(out, sc, sd, MPI_UNSIGNED_SHORT, in, rc_, rd, MPI_UNSIGNED_SHORT, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) break;
        for (size_t i = 0; i < mine; i++) {
            float s = from_bf16(in[i]);
            for (int r = 1; r < ranks; r++) s += from_bf16(in[(size_t)r * mine + i]);
            recv[k * R + i] = s;
        }
    }
    free(sc); free(out); free(in);
    return rc;
}

int gift_mpi_allgather_f32(float *buf, const size_t *counts, const size_t *displs, size_t limit) {
    int ranks = gift_mpi_size(), me = gift_mpi_rank();
    limit = clamp_limit(limit);
    size_t most = 0;
    int fits = 1;
    for (int r = 0; r < ranks; r++) {
        most = counts[r] > most ? counts[r] : most;
        if (counts[r] > limit || displs[r] > limit) fits = 0;
    }
    int *c = malloc(sizeof(int) * (size_t)ranks), *d = malloc(sizeof(int) * (size_t)ranks);
    if (!c || !d) { free(c); free(d); return -1; }
    int rc = 0;
    if (fits) {
        for (int r = 0; r < ranks; r++) { c[r] = (int)counts[r]; d[r] = (int)displs[r]; }
        calls++; rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, c, d, MPI_FLOAT, MPI_COMM_WORLD);
        free(c); free(d);
        return rc;
    }
    // In rounds through a staging buffer of ranks × R floats (its displacements r·R stay within limit).
    size_t R = min_sz(limit / (size_t)ranks, ROUND_FLOATS);
    if (R == 0) R = 1;
    float *stage = malloc(sizeof(float) * R * (size_t)ranks);
    if (!stage) { free(c); free(d); return -1; }
    for (size_t k = 0; k * R < most && rc == MPI_SUCCESS; k++) {
        for (int r = 0; r < ranks; r++) { c[r] = (int)round_count(counts[r], k, R); d[r] = (int)((size_t)r * R); }
        calls++; rc = MPI_Allgatherv(buf + displs[me] + k * R, c[me], MPI_FLOAT, stage, c, d, MPI_FLOAT, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) break;
        for (int r = 0; r < ranks; r++)
            if (r != me && c[r]) memcpy(buf + displs[r] + k * R, stage + (size_t)r * R, (size_t)c[r] * sizeof(float));
    }
    free(stage); free(c); free(d);
    return rc;
}

int gift_mpi_allgather_bf16(float *buf, const size_t *counts, const size_t *displs, size_t limit) {
    int ranks = gift_mpi_size(), me = gift_mpi_rank();
    limit = clamp_limit(limit);
    // rounds through a staging buffer of ranks × R values (displacements r·R)
    size_t most = largest(counts, ranks), R = staged_round(limit, ranks);
    int *c = malloc(sizeof(int) * 2 * (size_t)ranks);
    unsigned short *stage = malloc(sizeof(unsigned short) * R * (size_t)ranks);
    if (!c || !stage) { free(c); free(stage); return -1; }
    int *d = c + ranks;
    int rc = 0;
    for (size_t k = 0; k * R < most && rc == MPI_SUCCESS; k++) {
        for (int r = 0; r < ranks; r++) { c[r] = (int)round_count(counts[r], k, R); d[r] = (int)((size_t)r * R); }
        const float *mine = buf + displs[me] + k * R;
        for (int i = 0; i < c[me]; i++) stage[(size_t)me * R + i] = to_bf16(mine[i]);
        calls++;
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, stage, c, d, MPI_UNSIGNED_SHORT, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) break;
        for (int r = 0; r < ranks; r++)
            for (int i = 0; i < c[r]; i++) buf[displs[r] + k * R + i] = from_bf16(stage[(size_t)r * R + i]);
    }
    free(c); free(stage);
    return rc;
}

int gift_mpi_broadcast_bytes(void *buf, size_t count, int root, size_t limit) {
    char *p = buf;
    limit = clamp_limit(limit);
    for (size_t off = 0; off < count; off += limit) {
        size_t n = min_sz(count - off, limit);
        calls++; int rc = MPI_Bcast(p + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

int gift_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
void gift_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
double gift_mpi_wtime(void) { return MPI_Wtime(); }
