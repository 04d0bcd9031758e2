namespace ContinualMoE.Evaluation;

/// <summary>
/// Counts correct predictions per task over an evaluation pass, plus a confusion matrix of predicted task versus true
/// task. Works on plain arrays (copy predictions off the tensor once per batch) so it is testable without TorchSharp.
/// Accuracies are in percent, like <see cref="AccuracyMatrix"/>.
/// </summary>
public sealed class ClassificationAccumulator
{
    private readonly Func<int, int> _taskOfLabel;
    private readonly long[] _correct;
    private readonly long[] _total;
    // [trueTask, predictedTask]
    private readonly long[,] _taskConfusion;

    /// <param name="taskCount">Number of tasks in the stream.</param>
    /// <param name="taskOfLabel">Maps a class label to the task that introduces it.</param>
    public ClassificationAccumulator(int taskCount, Func<int, int> taskOfLabel)
    {
        if (taskCount <= 0) throw new ContinualMoEException($"task count must be positive, got {taskCount}");
        TaskCount = taskCount;
        _taskOfLabel = taskOfLabel ?? throw new ArgumentNullException(nameof(taskOfLabel));
        _correct = new long[taskCount];
        _total = new long[taskCount];
        _taskConfusion = new long[taskCount, taskCount];
    }

    public int TaskCount { get; }

    /// <summary>
    /// Adds a batch of class predictions. The task confusion is updated with <paramref name="predictedTasks"/> when the
    /// method predicts a task explicitly; otherwise with the task that owns the predicted class, which is the task
    /// identity implied by a class-incremental prediction.
    /// </summary>
    public void Add(ReadOnlySpan<long> predictions, ReadOnlySpan<long> labels, ReadOnlySpan<long> predictedTasks = default)
    {
        if (predictions.Length != labels.Length)
            throw new ContinualMoEException($"{predictions.Length} predictions but {labels.Length} labels");
        var explicitTasks = !predictedTasks.IsEmpty;
        if (explicitTasks && predictedTasks.Length != labels.Length)
            throw new ContinualMoEException($"{predictedTasks.Length} predicted tasks but {labels.Length} labels");

        for (var n = 0; n < labels.Length; n++)
        {
            var trueTask = TaskOf(labels[n], "label");
            _total[trueTask]++;
            if (predictions[n] == labels[n]) _correct[trueTask]++;
            var predictedTask = explicitTasks ? CheckTask(predictedTasks[n]) : TaskOf(predictions[n], "prediction");
            _taskConfusion[trueTask, predictedTask]++;
        }
    }

    public void Add(ReadOnlySpan<int> predictions, ReadOnlySpan<int> labels, ReadOnlySpan<int> predictedTasks = default) =>
        Add(Widen(predictions), Widen(labels), predictedTasks.IsEmpty ? default : Widen(predictedTasks));

    public long Correct(int task) => _correct[CheckTask(task)];

    public long Total(int task) => _total[CheckTask(task)];

    /// <summary>Accuracy on <paramref name="task"/> in percent; NaN when it has no samples yet.</summary>
    public double Accuracy(int task) => Percent(_correct[CheckTask(task)], _total[task]);

    /// <summary>Accuracy over every sample added, in percent; NaN when empty.</summary>
    public double OverallAccuracy => Percent(_correct.Sum(), _total.Sum());

    /// <summary>Copy of the confusion of tasks: element <c>[trueTask, predictedTask]</c> counts samples.</summary>
    public long[,] TaskConfusion => (long[,])_taskConfusion.Clone();

    /// <summary>Percentage of <paramref name="task"/>'s samples whose predicted task was <paramref name="task"/>; NaN when empty.</summary>
    public double TaskIdentityAccuracy(int task) => Percent(_taskConfusion[CheckTask(task), task], _total[task]);

    /// <summary>Percentage of all samples whose predicted task was right; NaN when empty.</summary>
    public double OverallTaskIdentityAccuracy
    {
        get
        {
            long right = 0;
            for (var i = 0; i < TaskCount; i++) right += _taskConfusion[i, i];
            return Percent(right, _total.Sum());
        }
    }

    /// <summary>Records per-task counts for tasks <c>0..afterTask</c> into column <paramref name="afterTask"/>.</summary>
    public void RecordInto(AccuracyMatrix matrix, int afterTask) =>
        RecordColumn(matrix, afterTask, task => _correct[task]);

    /// <summary>Records per-task task-identity counts for tasks <c>0..afterTask</c> into column <paramref name="afterTask"/>.</summary>
    public void RecordTaskIdentityInto(AccuracyMatrix matrix, int afterTask) =>
        RecordColumn(matrix, afterTask, task => _taskConfusion[task, task]);

    public void Reset()
    {
        Array.Clear(_correct);
        Array.Clear(_total);
        Array.Clear(_taskConfusion);
    }

    private void RecordColumn(AccuracyMatrix matrix, int afterTask, Func<int, long> correctOf)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        if (matrix.TaskCount != TaskCount)
            throw new ContinualMoEException($"matrix has {matrix.TaskCount} tasks but the accumulator has {TaskCount}");
        for (var task = 0; task <= afterTask; task++)
        {
            // A seen task without test samples is a data-loading bug, not an accuracy of zero.
            if (_total[task] == 0)
                throw new ContinualMoEException($"no test samples of task {task} were evaluated after task {afterTask}");
            matrix.Record(task, afterTask, correctOf(task), _total[task]);
        }
    }

    private int TaskOf(long classLabel, string what)
    {
        if (classLabel < 0 || classLabel > int.MaxValue)
            throw new ContinualMoEException($"{what} {classLabel} is not a valid class label");
        var task = _taskOfLabel((int)classLabel);
        if (task < 0 || task >= TaskCount)
            throw new ContinualMoEException($"{what} {classLabel} maps to task {task}, outside 0..{TaskCount - 1}");
        return task;
    }

    private int CheckTask(long task)
    {
        if (task < 0 || task >= TaskCount)
            throw new ContinualMoEException($"task {task} is outside 0..{TaskCount - 1}");
        return (int)task;
    }

    private static double Percent(long correct, long total) => total == 0 ? double.NaN : 100.0 * correct / total;

    private static long[] Widen(ReadOnlySpan<int> values)
    {
        var wide = new long[values.Length];
        for (var n = 0; n < values.Length; n++) wide[n] = values[n];
        return wide;
    }
}
