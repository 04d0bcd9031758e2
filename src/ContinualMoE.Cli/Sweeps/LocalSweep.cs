using System.Diagnostics;
using System.Runtime.InteropServices;
using Spectre.Console;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>
/// Runs a sweep's incomplete runs on this machine, in index order. One at a time runs them in this process with every
/// core; N at a time starts N <c>continual-moe sweep-task</c> processes, each with cores / N libtorch threads
/// (OMP_NUM_THREADS and torch.set_num_threads), so the runs do not oversubscribe the cores (docs/sweeps.md has the
/// measurement). A run that another process holds (an earlier sweep's orphaned worker, a second sweep on the same
/// folder) is waited for, never started twice; a killed sweep restarted on the same folder skips complete runs and
/// resumes interrupted ones from their last checkpoint.
/// </summary>
internal static class LocalSweep
{
    public sealed record Outcome(IReadOnlyList<string> Completed, IReadOnlyList<(string Run, int Code)> Failed, bool Interrupted);

    public static Outcome Run(SweepFolder sweep, int parallel, int? threadsPerRun, CancellationToken cancellation)
    {
        // SIGTERM (kill, a scheduler's stop) and SIGINT/SIGHUP stop the sweep the way Ctrl+C does: the workers are
        // stopped and every run keeps its last checkpoint. Without this, SIGTERM would end this process at once and
        // leave its workers running.
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stopping.Cancel();
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Stop);
        return Schedule(sweep, parallel, threadsPerRun, stopping.Token);
    }

    private static Outcome Schedule(SweepFolder sweep, int parallel, int? threadsPerRun, CancellationToken cancellation)
    {
        var threads = threadsPerRun ?? Math.Max(1, Environment.ProcessorCount / parallel);
        var pending = new Queue<int>(Enumerable.Range(0, sweep.Runs.Count).Where(i => !sweep.IsComplete(sweep.Runs[i])));
        var skipped = sweep.Runs.Count - pending.Count;
        AnsiConsole.MarkupLine($"Sweep [bold]{Markup.Escape(sweep.Name)}[/]: {sweep.Runs.Count} runs, {skipped} complete, {pending.Count} to run, " +
                               (parallel == 1 ? "one at a time in this process." : $"{parallel} at a time with {threads} libtorch threads each."));
        var completed = new List<string>();
        var failed = new List<(string, int)>();
        var held = new List<int>();
        var active = new Dictionary<Task<int>, (int Index, Process? Process)>();
        var started = skipped;
        try
        {
            while (true)
            {
                if (cancellation.IsCancellationRequested) return new Outcome(completed, failed, true);
                while (active.Count < parallel && pending.Count > 0)
                {
                    var index = pending.Dequeue();
                    var run = sweep.Runs[index];
                    AnsiConsole.MarkupLine($"[[{++started}/{sweep.Runs.Count}]] [bold]{Markup.Escape(run.Name)}[/]");
                    if (parallel == 1)
                    {
                        // In this process: the run's own progress display shows; one task at a time, so no thread split.
                        AnsiConsole.Write(new Rule(Markup.Escape(run.Name)));
                        int code;
                        try { code = SweepTask.Execute(sweep, index, cancellation); }
                        catch (ContinualMoEException e)
                        {
                            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
                            code = 1;
                        }
                        active[Task.FromResult(code)] = (index, null);
                    }
                    else
                    {
                        var process = StartWorker(sweep, index, threads);
                        active[process.WaitForExitAsync(CancellationToken.None).ContinueWith(_ => process.ExitCode, TaskScheduler.Default)] = (index, process);
                    }
                }
                if (active.Count == 0)
                {
                    if (held.Count == 0) break;
                    // Runs held by another process: wait for their claims to drop, then look again (complete, or left interrupted).
                    Task.Delay(TimeSpan.FromSeconds(2), cancellation).ContinueWith(_ => { }).Wait();
                    foreach (var index in held.Where(i => !SweepClaim.IsHeld(sweep.ClaimFile(sweep.Runs[i]))).ToList())
                    {
                        held.Remove(index);
                        if (sweep.IsComplete(sweep.Runs[index])) completed.Add(sweep.Runs[index].Name);
                        else pending.Enqueue(index);
                    }
                    continue;
                }
                var stop = Task.Delay(Timeout.Infinite, cancellation);
                var finished = Task.WhenAny(active.Keys.Append(stop)).Result;
                if (finished == stop) return new Outcome(completed, failed, true);
                var (doneIndex, _) = active[(Task<int>)finished];
                active.Remove((Task<int>)finished);
                var name = sweep.Runs[doneIndex].Name;
                var exit = ((Task<int>)finished).Result;
                if (exit == SweepTask.Held)
                {
                    AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(name)}[/] is held by another process; waiting for it.");
                    held.Add(doneIndex);
                }
                else if (exit == 0) completed.Add(name);
                else if (exit == 130 || cancellation.IsCancellationRequested) return new Outcome(completed, failed, true);
                else
                {
                    failed.Add((name, exit));
                    AnsiConsole.MarkupLine($"[red]{Markup.Escape(name)} failed[/] (exit code {exit}); log: {Markup.Escape(parallel == 1 ? "above" : sweep.LogFile(sweep.Runs[doneIndex]))}");
                }
                if (parallel > 1 && exit != SweepTask.Held) AnsiConsole.MarkupLine($"{(exit == 0 ? "done" : "stopped")}: {Markup.Escape(name)}");
            }
        }
        finally
        {
            // Interrupted: stop the workers; each run keeps its last checkpoint and resumes on the next sweep.
            foreach (var (_, process) in active.Values)
                if (process is { HasExited: false }) process.Kill(entireProcessTree: true);
        }
        return new Outcome(completed, failed, false);
    }

    private static Process StartWorker(SweepFolder sweep, int index, int threads)
    {
        var run = sweep.Runs[index];
        var info = SelfCommand.StartInfo(["sweep-task", sweep.Path, "--index", index.ToString(), "--threads", threads.ToString()]);
        info.Environment["OMP_NUM_THREADS"] = threads.ToString();
        info.Environment["MKL_NUM_THREADS"] = threads.ToString();
        Directory.CreateDirectory(Path.GetDirectoryName(sweep.LogFile(run))!);
        var log = new StreamWriter(new FileStream(sweep.LogFile(run), FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var gate = new object();
        void Write(string? line) { if (line is not null) lock (gate) log.WriteLine(line); }
        process.OutputDataReceived += (_, e) => Write(e.Data);
        process.ErrorDataReceived += (_, e) => Write(e.Data);
        process.Exited += (_, _) => { process.WaitForExit(); lock (gate) log.Dispose(); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}

/// <summary>How this program starts itself: the apphost if that is what runs, else <c>dotnet continual-moe.dll</c>.</summary>
internal static class SelfCommand
{
    public static (string FileName, IReadOnlyList<string> Prefix) Resolve()
    {
        var dll = typeof(SelfCommand).Assembly.Location;
        var process = Environment.ProcessPath;
        if (process is not null && Path.GetFileNameWithoutExtension(process) == "continual-moe") return (process, []);
        var dotnet = process is not null && Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? process
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return (dotnet, [dll]);
    }

    /// <summary>This program with <paramref name="arguments"/>, its output and errors redirected for the caller to read.</summary>
    public static ProcessStartInfo StartInfo(IEnumerable<string> arguments)
    {
        var (fileName, prefix) = Resolve();
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in prefix.Concat(arguments)) info.ArgumentList.Add(argument);
        return info;
    }
}
