namespace ContinualMoE.Cli.Reporting;

/// <summary>One line of <c>epochs.jsonl</c>: what happened in one training epoch of one task.</summary>
/// <param name="Task">Task index (0-based, like the accuracy matrix).</param>
/// <param name="Epoch">Epoch index within the task (0-based).</param>
/// <param name="Loss">Mean training loss over the epoch.</param>
/// <param name="Accuracy">Training accuracy over the epoch, in percent.</param>
/// <param name="ImagesPerSecond">Training throughput.</param>
/// <param name="Seconds">Wall-clock duration of the epoch.</param>
/// <param name="LearningRate">Learning rate at the end of the epoch.</param>
public sealed record EpochLogEntry(
    int Task,
    int Epoch,
    double Loss,
    double Accuracy,
    double ImagesPerSecond,
    double Seconds,
    double LearningRate);
