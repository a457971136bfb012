/*
 * pause: the process that holds a pod's namespaces (the CRI "sandbox" container).
 *
 * It sleeps in pause() and does nothing else: exits 0 on SIGINT or SIGTERM (so a pod stop
 * is quick and clean), and reaps any child that gets re-parented to it, because with a
 * shared PID namespace it is PID 1 of the pod and orphans become its children.
 *
 * Build static so the image needs no libc:  gcc -static -Os -s -o pause pause.c
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	int saved = errno; /* a handler must not clobber the interrupted code's errno */
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static int install(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0) {
		fprintf(stderr, "pause: failed to install handler for signal %d: %s\n", sig,
			strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: pause (takes no arguments)\n");
		return 2;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not PID 1, orphans will not be reaped here\n");
	if (install(SIGINT, on_stop) || install(SIGTERM, on_stop) ||
	    install(SIGCHLD, on_child))
		return 1;
	for (;;)
		pause();
	return 1; /* not reached */
}
