#include "gift_mpi.h"
#include <mpi.h>
#include <stdlib.h>
#include <limits.h>

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

int gift_mpi_allreduce_sum_f32(float *buf, size_t count, size_t piece) {
    if (piece == 0 || piece > INT_MAX) piece = INT_MAX;
    for (size_t off = 0; off < count; off += piece) {
        size_t n = count - off < piece ? count - off : piece;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

int gift_mpi_allreduce_sum_f64(double *buf, size_t count) {
    if (count > INT_MAX) return -1;
    return MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

int gift_mpi_reduce_scatter_sum_f32(const float *send, float *recv, const int *counts) {
    return MPI_Reduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int gift_mpi_allgather_f32(float *buf, const int *counts, const int *displs) {
    return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}

int gift_mpi_broadcast_bytes(void *buf, size_t count, int root) {
    char *p = buf;
    for (size_t off = 0; off < count; off += INT_MAX) {
        size_t n = count - off < INT_MAX ? count - off : INT_MAX;
        int rc = MPI_Bcast(p + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return rc;
    }
    return 0;
}

int gift_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
void gift_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
double gift_mpi_wtime(void) { return MPI_Wtime(); }
