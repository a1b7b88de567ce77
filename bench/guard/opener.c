/* Opens each file named on stdin (one per line) ROUNDS times, timing each
 * open+close with CLOCK_MONOTONIC, and prints one JSON line of statistics
 * (nanoseconds per open) for every round. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 1;
	size_t cap = 1024, n = 0;
	char **paths = malloc(cap * sizeof(*paths));
	char line[4096];
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (n == cap)
			paths = realloc(paths, (cap *= 2) * sizeof(*paths));
		paths[n++] = strdup(line);
	}
	long long *lat = malloc(n * sizeof(*lat));
	for (int r = 0; r < rounds; r++) {
		long long total = 0;
		int failed = 0;
		for (size_t i = 0; i < n; i++) {
			long long t0 = now_ns();
			int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				close(fd);
			else
				failed++;
			lat[i] = now_ns() - t0;
			total += lat[i];
		}
		qsort(lat, n, sizeof(*lat), cmp);
		printf("{\"round\": %d, \"n\": %zu, \"failed\": %d, \"mean_ns\": %lld, "
		       "\"p50_ns\": %lld, \"p99_ns\": %lld}\n",
		       r, n, failed, n ? total / (long long)n : 0, n ? lat[n / 2] : 0,
		       n ? lat[n * 99 / 100] : 0);
		fflush(stdout);
	}
	return 0;
}
