/*
 * The file workload the watch benchmark measures: for each of N distinct
 * files, create + write + close, rename, open + close, unlink. Written in C
 * so that generating events costs little CPU next to the consumers under
 * test (the benchmark must fit a 2-core machine).
 *
 * usage: workload [options] DIR FILES
 *   -d K   K files per directory chunk (default 1000); each chunk is a new
 *          directory DIR/cN, removed once empty
 *   -s D   spread the files over the D directories that -t D made,
 *          instead of making chunk directories
 *   -f     run each chunk in a child process (many distinct pids)
 *   -p     paced: read one byte from stdin before each chunk (EOF stops)
 *   -H     hold: after the last file print "done", then wait for stdin EOF
 *          so that the pid stays alive while consumers drain
 *   -t D   make D directories DIR/sN (under 100 parent directories DIR/pM
 *          when D > 1000, so D + 100 in all) and exit; FILES is ignored
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what, const char *path)
{
	fprintf(stderr, "workload: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void one_file(const char *dir, long i)
{
	char a[4096], b[4096];
	static const char data[] = "fanwatch benchmark payload\n";

	snprintf(a, sizeof a, "%s/f%ld.dat", dir, i);
	snprintf(b, sizeof b, "%s/g%ld.dat", dir, i);
	int fd = open(a, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create", a);
	if (write(fd, data, sizeof data - 1) < 0)
		die("write", a);
	close(fd);
	if (rename(a, b) < 0)
		die("rename", a);
	fd = open(b, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open", b);
	close(fd);
	if (unlink(b) < 0)
		die("unlink", b);
}

/* Where -t puts directory i of *dirs*. */
static void leaf(char *out, size_t size, const char *top, long i, long dirs)
{
	if (dirs > 1000)
		snprintf(out, size, "%s/p%ld/s%ld", top, i % 100, i);
	else
		snprintf(out, size, "%s/s%ld", top, i);
}

static void chunk(const char *top, long c, long first, long count, long spread)
{
	char dir[4096];

	if (spread > 0) {
		for (long i = first; i < first + count; i++) {
			leaf(dir, sizeof dir, top, i % spread, spread);
			one_file(dir, i);
		}
		return;
	}
	snprintf(dir, sizeof dir, "%s/c%ld", top, c);
	if (mkdir(dir, 0755) < 0)
		die("mkdir", dir);
	for (long i = first; i < first + count; i++)
		one_file(dir, i);
	if (rmdir(dir) < 0)
		die("rmdir", dir);
}

static void make_tree(const char *top, long dirs)
{
	char path[4096];
	long parents = dirs > 1000 ? 100 : 0;

	for (long p = 0; p < parents; p++) {
		snprintf(path, sizeof path, "%s/p%ld", top, p);
		if (mkdir(path, 0755) < 0)
			die("mkdir", path);
	}
	for (long i = 0; i < dirs; i++) {
		leaf(path, sizeof path, top, i, dirs);
		if (mkdir(path, 0755) < 0)
			die("mkdir", path);
	}
}

int main(int argc, char **argv)
{
	long per_dir = 1000, spread = 0, tree = 0;
	int forks = 0, paced = 0, hold = 0, opt;

	while ((opt = getopt(argc, argv, "d:s:fpHt:")) != -1) {
		switch (opt) {
		case 'd': per_dir = atol(optarg); break;
		case 's': spread = atol(optarg); break;
		case 'f': forks = 1; break;
		case 'p': paced = 1; break;
		case 'H': hold = 1; break;
		case 't': tree = atol(optarg); break;
		default: return 2;
		}
	}
	if (argc - optind != 2 || per_dir <= 0) {
		fprintf(stderr, "usage: workload [-d K] [-s D] [-f] [-p] [-H] [-t D] DIR FILES\n");
		return 2;
	}
	const char *top = argv[optind];
	long files = atol(argv[optind + 1]);

	if (tree) {
		make_tree(top, tree);
		return 0;
	}
	long done = 0;
	for (long c = 0; done < files; c++) {
		long count = files - done < per_dir ? files - done : per_dir;
		char credit;

		if (paced && read(0, &credit, 1) != 1)
			break;
		if (forks) {
			pid_t pid = fork();
			if (pid < 0)
				die("fork", top);
			if (pid == 0) {
				chunk(top, c, done, count, spread);
				_exit(0);
			}
			int status;
			if (waitpid(pid, &status, 0) < 0 || status != 0)
				return 1;
		} else {
			chunk(top, c, done, count, spread);
		}
		done += count;
	}
	printf("done %ld\n", done);
	fflush(stdout);
	if (hold) {
		char buf[64];
		while (read(0, buf, sizeof buf) > 0)
			;
	}
	return 0;
}
