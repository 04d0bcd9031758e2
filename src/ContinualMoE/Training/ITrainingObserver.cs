namespace ContinualMoE.Training;

/// <summary>Progress of a run, for the CLI's progress bars and logs (the library itself prints nothing).</summary>
public interface ITrainingObserver
{
    void TaskStarted(int task, int taskCount) { }
    void PhaseStarted(int task, string phase, int epochs, int batchesPerEpoch) { }
    void BatchFinished(int task, string phase, int epoch, int batch, double loss, double imagesPerSecond) { }
    void EpochFinished(EpochRecord record) { }
    void TaskEvaluated(TaskEvaluation evaluation) { }
}

/// <summary>One line of the per-epoch log. "Images" per second count the batches' inputs: images, or real tokens for
/// text runs (<see cref="DataSource.ThroughputUnit"/>). <see cref="TrainAccuracy"/> is null for a phase whose steps
/// compute their whole loss themselves (no class logits: a language model's token loss).</summary>
public sealed record EpochRecord(
    int Task, string Phase, int Epoch, int Epochs, double Loss, double? TrainAccuracy, double ImagesPerSecond,
    double Seconds, double LearningRate);

/// <summary>Accuracy on each seen task after training <see cref="AfterTask"/>.</summary>
public sealed record TaskEvaluation(
    int AfterTask, double[] TaskAccuracy, int[] TaskSampleCounts, double? TaskIdentityAccuracy,
    double TestImagesPerSecond, double TrainSeconds);
