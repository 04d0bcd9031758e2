using TorchSharp;
using ContinualMoE.Data.Transforms;
using System.Diagnostics;
using ContinualMoE.Evaluation;
using ContinualMoE.Scenarios;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>
/// Runs a learner through a scenario: for each task, the learner's training phases (epochs, optimiser, schedule,
/// clipping, masked cross-entropy), its end-of-task work, then evaluation on every task seen so far, recorded in
/// the accuracy matrix A[i, t]. Deterministic for a seed: each task reseeds torch from (seed, task), so a run resumed
/// between tasks continues exactly as an uninterrupted one.
/// </summary>
public sealed class ContinualTrainer(IContinualScenario scenario, DataSource data, int seed, ITrainingObserver? observer = null)
{
    private readonly ITrainingObserver observer = observer ?? new NullObserver();

    /// <summary>Where this trainer's time went so far (data, forward, backward, optimiser, task work, evaluation).</summary>
    public TrainerTimes Times { get; } = new();
    private Tensor? classInTask;

    /// <summary>Trains tasks <paramref name="startTask"/>.. and fills <paramref name="results"/> (new when null).
    /// <paramref name="afterTask"/> runs after each task's evaluation (the CLI saves its checkpoint there).</summary>
    public RunResults Run(IContinualLearner learner, int startTask = 0, RunResults? results = null,
        Action<int, RunResults>? afterTask = null, CancellationToken cancellation = default)
    {
        var taskCount = scenario.Tasks.Count;
        results ??= new RunResults(new AccuracyMatrix(taskCount), new AccuracyMatrix(taskCount));
        for (var t = startTask; t < taskCount; t++)
        {
            cancellation.ThrowIfCancellationRequested();
            observer.TaskStarted(t, taskCount);
            var trainSeconds = TrainTask(learner, t, cancellation);
            var evaluation = Evaluate(learner, t);
            for (var i = 0; i <= t; i++)
            {
                results.Accuracy.Record(i, t, evaluation.Correct[i], evaluation.Counts[i]);
                if (evaluation.TaskIdentityCorrect is { } identity) results.TaskIdentity.Record(i, t, identity[i], evaluation.Counts[i]);
            }
            results.LatestClasses = evaluation.Classes;
            observer.TaskEvaluated(new TaskEvaluation(t, evaluation.Accuracy, evaluation.Counts, evaluation.TaskIdentityAccuracy,
                evaluation.ImagesPerSecond, trainSeconds));
            afterTask?.Invoke(t, results);
        }
        return results;
    }

    /// <summary>Trains task <paramref name="t"/> onto <paramref name="learner"/> (its phases and end-of-task work), seeded
    /// from (seed, task) as in <see cref="Run"/>; returns the training time in seconds. A deployed model learns its next
    /// task through this alone.</summary>
    public double TrainTask(IContinualLearner learner, int t, CancellationToken cancellation = default)
    {
        torch.random.manual_seed(TaskSeed(t));
        var context = Context(t, learner);
        var clock = Stopwatch.StartNew();
        var mark = Stopwatch.GetTimestamp();
        learner.BeginTask(context);
        var phases = learner.TrainingPhases(context);
        Times.AddTaskWork(Stopwatch.GetTimestamp() - mark);
        for (var p = 0; p < phases.Count; p++) RunPhase(learner, context, phases[p], p, cancellation);
        mark = Stopwatch.GetTimestamp();
        learner.EndTask(context);
        Times.AddTaskWork(Stopwatch.GetTimestamp() - mark);
        return clock.Elapsed.TotalSeconds;
    }

    public int TaskSeed(int task) => unchecked(seed * 7919 + 1000 * (task + 1));

    /// <summary>What <paramref name="learner"/> knows about task <paramref name="t"/>. Earlier tasks' training sets
    /// (<see cref="TaskContext.SeenTrainSets"/>) are given only to learners that declare rehearsal
    /// (<see cref="IRehearsalLearner"/>); every other learner gets the current task's data alone.</summary>
    public TaskContext Context(int t, IContinualLearner? learner = null)
    {
        var task = scenario.Tasks[t];
        IReadOnlyList<Data.ILabelledDataset> seenTrainSets = learner is IRehearsalLearner
            ? scenario.Tasks.Take(t + 1).Select(x => x.Train).ToList()
            : [];
        return new TaskContext(t, scenario.Tasks.Count, scenario.ClassCount, task.Classes, scenario.ClassMask(t),
            scenario.SeenClassMask(t), task.Train, seenTrainSets, data, data.Device, TaskSeed(t));
    }

    private void RunPhase(IContinualLearner learner, TaskContext context, TrainingPhase phase, int phaseIndex, CancellationToken cancellation)
    {
        var dataset = phase.Data ?? context.Train;
        var loader = data.Loader(dataset, phase.Augment, shuffle: true, dropLast: data.DropLastInTraining);
        if (loader.BatchesPerEpoch == 0)
            throw new ContinualMoEException(
                $"drop_last: task {context.TaskIndex + 1}, phase '{phase.Name}' has {dataset.Count} training images, fewer than batch_size {loader.BatchSize}, so no batch would be trained; lower batch_size or set drop_last to false");
        // Disposed however the phase ends (a NaN loss, a cancelled run, a data error).
        using var optimizer = Optimizers.Create(phase.Parameters, phase.Optimizer);
        var trainable = phase.Parameters.SelectMany(g => g.Parameters).ToList();
        var logitMask = phase.LogitMask ?? context.TaskClassMask;
        observer.PhaseStarted(context.TaskIndex, phase.Name, phase.Epochs, loader.BatchesPerEpoch);
        long iteration = 0;   // optimiser steps in this phase: per-iteration schedules depend on it alone (resume-exact)
        for (var epoch = 0; epoch < phase.Epochs; epoch++)
        {
            phase.OnEpochStart?.Invoke(epoch);
            var clock = Stopwatch.StartNew();
            double lossSum = 0; long seen = 0, scored = 0, correct = 0, items = 0; var batchIndex = 0;
            using var batches = loader.Epoch(context.TaskIndex * 10_000 + phaseIndex * 1_000 + epoch).GetEnumerator();
            var mark = Stopwatch.GetTimestamp();
            while (batches.MoveNext())
            {
                var batch = batches.Current;
                Times.AddData(Stopwatch.GetTimestamp() - mark);
                cancellation.ThrowIfCancellationRequested();
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    mark = Stopwatch.GetTimestamp();
                    Optimizers.ApplySchedule(optimizer, phase.Parameters, phase.Optimizer, epoch, phase.Epochs, iteration++, loader.BatchesPerEpoch);
                    optimizer.zero_grad();
                    Times.AddOptimizer(Stopwatch.GetTimestamp() - mark);
                    mark = Stopwatch.GetTimestamp();
                    var output = phase.Step(batch);
                    var loss = output.Logits is null
                        ? output.AuxiliaryLoss ?? throw new InvalidOperationException($"phase {phase.Name} returned no loss")
                        : Losses.MaskedCrossEntropy(output.Logits, batch.Labels, logitMask).Plus(output.AuxiliaryLoss ?? zeros(1, device: batch.Labels.device).squeeze());
                    var value = loss.item<float>();
                    Times.AddForward(Stopwatch.GetTimestamp() - mark);
                    if (!float.IsFinite(value))
                        throw new ContinualMoEException(
                            $"loss is {value} at task {context.TaskIndex + 1}, phase '{phase.Name}', epoch {epoch + 1}, batch {batchIndex + 1}: lower the learning rate or check the input data");
                    mark = Stopwatch.GetTimestamp();
                    loss.backward();
                    Times.AddBackward(Stopwatch.GetTimestamp() - mark);
                    mark = Stopwatch.GetTimestamp();
                    Optimizers.ClipAndStep(optimizer, trainable, phase.Optimizer);
                    Times.AddOptimizer(Stopwatch.GetTimestamp() - mark);
                    var count = batch.Labels.shape[0];
                    lossSum += value * count;
                    seen += count;
                    items += batch.Items;
                    Times.AddTrainImages(batch.Items);
                    if (output.Logits is not null)
                    {
                        correct += Losses.MaskLogits(output.Logits.detach(), logitMask).argmax(-1).eq(batch.Labels).sum().item<long>();
                        scored += count;
                    }
                }
                batchIndex++;
                observer.BatchFinished(context.TaskIndex, phase.Name, epoch, batchIndex, lossSum / Math.Max(1, seen), items / clock.Elapsed.TotalSeconds);
                mark = Stopwatch.GetTimestamp();
            }
            observer.EpochFinished(new EpochRecord(context.TaskIndex, phase.Name, epoch, phase.Epochs, lossSum / Math.Max(1, seen),
                scored == 0 ? null : 100.0 * correct / scored, items / clock.Elapsed.TotalSeconds, clock.Elapsed.TotalSeconds,
                Optimizers.Rate(phase.Optimizer, phase.Optimizer.LearningRate, epoch, phase.Epochs, Math.Max(0, iteration - 1), loader.BatchesPerEpoch)));
        }
    }

    /// <summary>Correct (summed per-sample scores, <see cref="Prediction.Scores"/>) and total test samples of each task
    /// seen so far (and task-identity hits for methods that infer the task), per-class results, and the evaluation speed.</summary>
    public sealed record EvaluationResult(double[] Accuracy, double[] Correct, int[] Counts, long[]? TaskIdentityCorrect,
        double? TaskIdentityAccuracy, double ImagesPerSecond, ClassResults Classes);

    /// <summary>Accuracy on every task seen so far, with logits restricted to seen classes (class-incremental) or to the
    /// true task's classes (task-incremental). A predicted task counts as correct when it is any task whose training
    /// set holds the sample's class (the owning task when classes are disjoint; docs/metrics.md).</summary>
    public EvaluationResult Evaluate(IContinualLearner learner, int afterTask)
    {
        var seenMask = scenario.SeenClassMask(afterTask);
        var correct = new double[afterTask + 1];
        var counts = new int[afterTask + 1];
        var identityCorrect = new long[afterTask + 1];
        // Per class, counted in the first task row that holds it (a class in several tasks' test sets counts once).
        var classCorrect = new double[scenario.ClassCount];
        var classTotal = new long[scenario.ClassCount];
        var classCounted = new bool[scenario.ClassCount];
        long taskIdentityTotal = 0, images = 0;
        var clock = Stopwatch.StartNew();
        using var noGrad = torch.no_grad();
        for (var i = 0; i <= afterTask; i++)
        {
            var testSet = scenario.Tasks[i].Test;
            var countClasses = scenario.Tasks[i].TestClasses.Where(c => !classCounted[c]).ToHashSet();
            foreach (var c in countClasses) classCounted[c] = true;
            var loader = data.Loader(testSet, augment: false, shuffle: false);
            var taskMask = scenario.ClassMask(i);
            var evalContext = new EvaluationContext(afterTask + 1, seenMask,
                scenario.TaskIncremental ? i : null, scenario.TaskIncremental ? taskMask : null);
            foreach (var batch in loader.Epoch(0))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                using (var prediction = learner.Predict(batch, evalContext with { Samples = new SampleIdentity(testSet, batch.Indices) }))
                {
                    var mask = scenario.TaskIncremental ? taskMask : seenMask;
                    var predicted = Losses.MaskLogits(prediction.Logits, mask).argmax(-1);
                    // 1/0 per argmax hit, or the method's per-sample scores in [0, 1] (generated answers).
                    var scores = (prediction.Scores ?? predicted.eq(batch.Labels)).to(ScalarType.Float64);
                    correct[i] += scores.sum().item<double>();
                    counts[i] += (int)batch.Labels.shape[0];
                    images += batch.Items;
                    if (countClasses.Count > 0)
                    {
                        var labels = batch.Labels.cpu().data<long>().ToArray();
                        var score = scores.cpu().data<double>().ToArray();
                        for (var s = 0; s < labels.Length; s++)
                        {
                            if (!countClasses.Contains((int)labels[s])) continue;
                            classTotal[labels[s]]++;
                            classCorrect[labels[s]] += score[s];
                        }
                    }
                    if (prediction.PredictedTask is not null)
                    {
                        identityCorrect[i] += PredictedTaskHoldsClass(prediction.PredictedTask, batch.Labels).sum().item<long>();
                        taskIdentityTotal += batch.Labels.shape[0];
                    }
                }
            }
        }
        Times.AddEvaluation(clock.ElapsedTicks, images);
        var accuracy = correct.Select((c, i) => counts[i] == 0 ? 0 : 100.0 * c / counts[i]).ToArray();
        var hasIdentity = taskIdentityTotal > 0;
        double? tii = hasIdentity ? 100.0 * identityCorrect.Sum() / taskIdentityTotal : null;
        return new EvaluationResult(accuracy, correct, counts, hasIdentity ? identityCorrect : null, tii, images / clock.Elapsed.TotalSeconds,
            new ClassResults(afterTask, classCorrect, classTotal));
    }

    /// <summary>[B] bool: the predicted task's training set holds the sample's class.</summary>
    private Tensor PredictedTaskHoldsClass(Tensor predictedTask, Tensor labels)
    {
        var taskCount = scenario.TaskCount;
        if (classInTask is null)
        {
            var table = new bool[scenario.ClassCount, taskCount];
            for (var c = 0; c < scenario.ClassCount; c++)
                foreach (var t in scenario.TasksOfClass(c)) table[c, t] = true;
            classInTask = torch.tensor(table, device: labels.device).DetachFromDisposeScope();
            lastTask = ((long)taskCount - 1).ToScalar();
        }
        var task = predictedTask.to(labels.device).to(ScalarType.Int64);
        var valid = task.ge(FirstTask).logical_and(task.le(lastTask!));
        var inRange = task.clamp(FirstTask, lastTask!);
        return classInTask.index([TensorIndex.Tensor(labels), TensorIndex.Tensor(inRange)]).logical_and(valid);
    }

    // Integer scalars kept referenced (docs/known-issues.md: a temporary Scalar can be finalized mid-call).
    private static readonly Scalar FirstTask = 0L.ToScalar();
    private Scalar? lastTask;

    private sealed class NullObserver : ITrainingObserver { }
}

/// <summary>The accuracy matrix, and the task-identity matrix for methods that predict the task (empty otherwise).</summary>
public sealed record RunResults(AccuracyMatrix Accuracy, AccuracyMatrix TaskIdentity)
{
    public bool HasTaskIdentity => TaskIdentity.TasksTrained > 0;

    /// <summary>Per-class test results of the latest evaluation (null before the first task of this session).</summary>
    public ClassResults? LatestClasses { get; set; }
}

/// <summary>Correct predictions (summed per-sample scores) and test samples per class (each class's test samples counted
/// once) after a task.</summary>
public sealed record ClassResults(int AfterTask, double[] Correct, long[] Total);
