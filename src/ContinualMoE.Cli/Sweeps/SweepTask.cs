using ContinualMoE.Cli.Commands;
using Spectre.Console;

namespace ContinualMoE.Cli.Sweeps;

/// <summary>
/// Executes one run of a sweep, the same way for every executor (the local sweep, a Slurm array task, a Kubernetes
/// completion index): claim it, skip it if complete, resume it if it has a checkpoint, otherwise start it (reclaiming a
/// folder that a killed process left before its first checkpoint), and record the outcome in attempts.jsonl.
/// </summary>
internal static class SweepTask
{
    /// <summary>Exit code when another process holds the run's claim (EX_TEMPFAIL): nothing was done.</summary>
    public const int Held = 75;

    public static int Execute(SweepFolder sweep, int index, CancellationToken cancellation)
    {
        if (index < 0 || index >= sweep.Runs.Count)
            throw ContinualMoEException.ForFile(sweep.Path, $"run index {index} is outside 0..{sweep.Runs.Count - 1}");
        var run = sweep.Runs[index];
        using var claim = SweepClaim.TryAcquire(sweep.ClaimFile(run));
        if (claim is null)
        {
            AnsiConsole.MarkupLine($"Run [bold]{Markup.Escape(run.Name)}[/] is being executed by another process ({Markup.Escape(sweep.ClaimFile(run))}); leaving it alone.");
            return Held;
        }
        var folder = sweep.RunFolder(run);
        if (sweep.IsComplete(run))
        {
            sweep.RecordAttempt(run, "skipped-complete");
            AnsiConsole.MarkupLine($"Run [bold]{Markup.Escape(run.Name)}[/] is complete; nothing to do.");
            return 0;
        }
        var resume = File.Exists(Path.Combine(folder, RunSession.CheckpointFileName));
        sweep.RecordAttempt(run, resume ? "resumed" : "started");
        int code;
        try
        {
            code = resume
                ? RunSession.Resume(folder, sweep.ConfigFile(run), [], cancellation)
                // A folder without a checkpoint is what a process killed during the first task leaves: start over.
                : RunSession.Start(run.Config, folder, force: true, cancellation);
        }
        catch (Exception e)
        {
            sweep.RecordAttempt(run, "failed", e.Message.Split('\n')[0], 1);
            throw;
        }
        if (code == 0 && sweep.IsComplete(run)) sweep.RecordAttempt(run, "completed");
        else sweep.RecordAttempt(run, code == 130 ? "interrupted" : "failed", null, code == 0 ? 1 : code);
        return code;
    }
}
