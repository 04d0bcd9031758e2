using System.Collections.Concurrent;
using System.Diagnostics;
using ContinualMoE.Cli.Sweeps;

namespace ContinualMoE.Tests.Cli;

/// <summary><c>continual-moe ARGS</c> as its own process (as users, sweeps and Slurm start it), and the one way tests
/// kill such a process mid-work.</summary>
internal static class CliProcess
{
    /// <summary>Starts <c>continual-moe ARGS</c>; each line it prints (stdout or stderr) goes to <paramref name="onLine"/>.</summary>
    public static Process Start(IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, Action<string>? onLine = null)
    {
        var info = SelfCommand.StartInfo(arguments);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is { } line) onLine?.Invoke(line); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) onLine?.Invoke(line); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// Starts <c>continual-moe ARGS</c>, waits until <paramref name="ready"/> (given what it has printed so far, polled
    /// every 10 ms on the calling thread, so a busy thread pool does not delay the kill) holds, runs
    /// <paramref name="whileRunning"/> (checks on the live process) and kills it with SIGKILL: no handler, no cleanup, as
    /// the OOM killer or a preempted node would. Returns everything it printed. Fails if the process ends first or
    /// <paramref name="ready"/> does not hold within 3 minutes.
    /// </summary>
    public static IReadOnlyList<string> KillWhen(IEnumerable<string> arguments, Func<IReadOnlyCollection<string>, bool> ready, Action? whileRunning = null)
    {
        var output = new ConcurrentQueue<string>();
        using var process = Start(arguments, onLine: output.Enqueue);
        try
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            var reached = false;
            while (!(reached = ready(output)) && !process.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(10);
            Assert.True(reached && !process.HasExited, "the process ended or never reached the point to kill it at: " + string.Join(" | ", output));
            whileRunning?.Invoke();
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        return [.. output];
    }
}
