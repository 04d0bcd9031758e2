using ContinualMoE.Cli.Reporting;
using ContinualMoE.Training;
using Spectre.Console;

namespace ContinualMoE.Cli.Commands;

/// <summary>
/// Shows a run's progress: a live bar per training phase (task, phase, epoch, loss, images/s, time left) on a terminal,
/// one line per epoch otherwise (CI logs); logs every epoch to epochs.jsonl (when given a run folder) and prints each task's accuracies.
/// </summary>
internal sealed class ConsoleObserver(RunFolder? folder) : ITrainingObserver
{
    private ProgressContext? progress;
    private ProgressTask? bar;
    private int taskCount;
    private double trainImages, trainSeconds, testImagesPerSecondSum;
    private int evaluations;

    /// <summary>What throughput counts: "img" or "tok" (text runs).</summary>
    public string Unit { get; init; } = "img";

    public double TrainImagesPerSecond => trainSeconds > 0 ? trainImages / trainSeconds : 0;
    public double TestImagesPerSecond => evaluations > 0 ? testImagesPerSecondSum / evaluations : 0;

    /// <summary>Runs <paramref name="work"/> with live progress bars when the console is interactive.</summary>
    public T Run<T>(Func<T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive) return work();
        return AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context => { progress = context; return work(); });
    }

    public void TaskStarted(int task, int count) => taskCount = count;

    public void PhaseStarted(int task, string phase, int epochs, int batchesPerEpoch)
    {
        if (progress is null) return;
        bar?.StopTask();
        bar = progress.AddTask(Describe(task, phase, 0, epochs, double.NaN, 0), maxValue: Math.Max(1, epochs * batchesPerEpoch));
    }

    public void BatchFinished(int task, string phase, int epoch, int batch, double loss, double imagesPerSecond)
    {
        if (bar is null) return;
        bar.Increment(1);
        bar.Description = Describe(task, phase, epoch, 0, loss, imagesPerSecond);
    }

    private string Describe(int task, string phase, int epoch, int epochs, double loss, double imagesPerSecond) =>
        Markup.Escape($"task {task + 1}/{taskCount} {phase} epoch {epoch + 1}" + (double.IsNaN(loss) ? "" : $" loss {loss:F3} {imagesPerSecond:F0} {Unit}/s"));

    public void EpochFinished(EpochRecord record)
    {
        folder?.AppendEpoch(record);
        trainImages += record.ImagesPerSecond * record.Seconds;
        trainSeconds += record.Seconds;
        if (progress is null)
            AnsiConsole.MarkupLine(Markup.Escape(
                $"task {record.Task + 1}/{taskCount} {record.Phase} epoch {record.Epoch + 1}/{record.Epochs}: loss {record.Loss:F4}, " +
                (record.TrainAccuracy is double accuracy ? $"train acc {accuracy:F1}%, " : "") + $"{record.ImagesPerSecond:F0} {Unit}/s, {record.Seconds:F1} s"));
    }

    public void TaskEvaluated(TaskEvaluation evaluation)
    {
        bar?.StopTask();
        bar = null;
        evaluations++;
        testImagesPerSecondSum += evaluation.TestImagesPerSecond;
        var accuracies = string.Join(" ", evaluation.TaskAccuracy.Select(a => $"{a:F1}"));
        var average = evaluation.TaskAccuracy.Average();
        var identity = evaluation.TaskIdentityAccuracy is double tii ? $", task identity {tii:F1}%" : "";
        var line = $"after task {evaluation.AfterTask + 1}: average accuracy {average:F2}% (per task: {accuracies}){identity}, " +
                   $"train {evaluation.TrainSeconds:F0} s, test {evaluation.TestImagesPerSecond:F0} {Unit}/s";
        if (progress is null) AnsiConsole.MarkupLine(Markup.Escape(line));
        else AnsiConsole.MarkupLine($"[green]{Markup.Escape(line)}[/]");
    }
}
