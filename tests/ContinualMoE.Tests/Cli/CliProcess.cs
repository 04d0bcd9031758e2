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
        var (fileName, prefix) = SelfCommand.Resolve();
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in prefix.Concat(arguments)) info.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is { } line) onLine?.Invoke(line); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) onLine?.Invoke(line); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// Starts <c>continual-moe ARGS</c>, waits until it prints a line that satisfies <paramref name="ready"/>, runs
    /// <paramref name="whileRunning"/> (checks on the live process) and kills it with SIGKILL: no handler, no cleanup, as
    /// the OOM killer or a preempted node would. Returns everything it printed. Fails if the process ends or prints no
    /// such line within 3 minutes.
    /// </summary>
    public static IReadOnlyList<string> KillWhen(IEnumerable<string> arguments, Func<string, bool> ready, Action? whileRunning = null)
    {
        var output = new ConcurrentQueue<string>();
        using var reached = new ManualResetEventSlim();
        using var process = Start(arguments, onLine: line =>
        {
            output.Enqueue(line);
            if (ready(line)) reached.Set();
        });
        try
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!reached.IsSet && !process.HasExited && DateTime.UtcNow < deadline) reached.Wait(10);
            Assert.True(reached.IsSet && !process.HasExited, "the process ended or never reached the point to kill it at: " + string.Join(" | ", output));
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
