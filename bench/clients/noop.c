/* The process floor: a statically linked program that does nothing. Any tool that does the job
 * pays at least this much to be started by the shell (fork, exec, map, exit, wait). */
int main(void) { return 0; }
