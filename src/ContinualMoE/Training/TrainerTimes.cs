using System.Diagnostics;

namespace ContinualMoE.Training;

/// <summary>
/// Where a <see cref="ContinualTrainer"/>'s wall time went (the end-to-end benchmark's split, issue 16 §3), in seconds:
/// waiting for training batches (decoding, augmentation, collation), the training step's forward (the method's step and
/// the loss), backward, optimiser (schedule, zero_grad, clipping, step), the learners' begin/end-of-task work
/// (statistics, classifier alignment), and evaluation. libtorch's CPU ops run synchronously, so a stopwatch around a call
/// measures its compute; on a GPU the forward figure would include queued work finishing later.
/// </summary>
public sealed class TrainerTimes
{
    public double Data { get; private set; }
    public double Forward { get; private set; }
    public double Backward { get; private set; }
    public double Optimizer { get; private set; }
    public double TaskWork { get; private set; }
    public double Evaluation { get; private set; }
    public long TrainImages { get; private set; }
    public long TestImages { get; private set; }

    public double Total => Data + Forward + Backward + Optimizer + TaskWork + Evaluation;

    internal void AddData(long ticks) => Data += Seconds(ticks);
    internal void AddForward(long ticks) => Forward += Seconds(ticks);
    internal void AddBackward(long ticks) => Backward += Seconds(ticks);
    internal void AddOptimizer(long ticks) => Optimizer += Seconds(ticks);
    internal void AddTaskWork(long ticks) => TaskWork += Seconds(ticks);
    internal void AddEvaluation(long ticks, long images) { Evaluation += Seconds(ticks); TestImages += images; }
    internal void AddTrainImages(long images) => TrainImages += images;

    private static double Seconds(long ticks) => (double)ticks / Stopwatch.Frequency;
}
