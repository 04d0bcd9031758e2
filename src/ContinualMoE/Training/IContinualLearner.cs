using ContinualMoE.Data;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>
/// A continual-learning method. The trainer calls, for every task in order:
/// <see cref="BeginTask"/>, then runs each of <see cref="TrainingPhases"/> (epochs of <see cref="TrainingPhase.Step"/>
/// over the task's data with the phase's optimiser), then <see cref="EndTask"/> (statistics, classifier alignment),
/// then evaluates <see cref="Predict"/> on every task seen so far. Prediction gets no task identity unless the
/// scenario is task-incremental.
/// </summary>
public interface IContinualLearner : IDisposable
{
    /// <summary>The registry name (e.g. "smope").</summary>
    string Name { get; }

    void BeginTask(TaskContext task);

    /// <summary>The phases that train this task, in order. Each gets a fresh optimiser (as the papers' code does),
    /// which is why checkpoints between tasks need no optimiser state.</summary>
    IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task);

    void EndTask(TaskContext task);

    /// <summary>Logits over all classes of the scenario for a batch of evaluation images.</summary>
    Prediction Predict(Tensor images, EvaluationContext context);

    /// <summary>Prediction for a whole evaluation batch (what the trainer calls): learners whose inputs need more than
    /// one tensor (text: token ids with attention and target masks) override this; image learners keep the default.</summary>
    Prediction Predict(Batch batch, EvaluationContext context) => Predict(batch.Inputs, context);

    /// <summary>Everything that defines the learner after a task (parameters, buffers, statistics, counters),
    /// by name. The frozen backbone is not part of it. Used for checkpoints and resume.</summary>
    IReadOnlyDictionary<string, Tensor> State();

    void LoadState(IReadOnlyDictionary<string, Tensor> state);

    /// <summary>Method-specific cost figures (trainable parameters, passes per test image, ...).</summary>
    MethodCost Cost(int tasksTrained);
}

/// <summary>Declares that a learner trains on earlier tasks' data (joint training, rehearsal). Only such learners get
/// the earlier tasks' training sets in <see cref="TaskContext.SeenTrainSets"/>; every other learner gets an empty list.</summary>
public interface IRehearsalLearner : IContinualLearner;

/// <summary>What a learner knows about the task it trains. <see cref="SeenTrainSets"/> holds the training sets of
/// tasks 0..TaskIndex for an <see cref="IRehearsalLearner"/> and is empty otherwise.</summary>
public sealed record TaskContext(
    int TaskIndex,
    int TaskCount,
    int ClassCount,
    IReadOnlyList<int> TaskClasses,
    bool[] TaskClassMask,
    bool[] SeenClassMask,
    ILabelledDataset Train,
    IReadOnlyList<ILabelledDataset> SeenTrainSets,
    DataSource Data,
    Device Device,
    int Seed)
{
    public bool IsFirstTask => TaskIndex == 0;
    public IEnumerable<int> SeenClasses => Enumerable.Range(0, ClassCount).Where(c => SeenClassMask[c]);
    /// <summary>Classes seen before this task and not part of it (the official codes' "classes of the earlier tasks").</summary>
    public int EarlierClassCount => Enumerable.Range(0, ClassCount).Count(c => SeenClassMask[c] && !TaskClassMask[c]);
}

/// <summary>What prediction may know: the classes seen so far, and the true task only in task-incremental scenarios.
/// <see cref="Samples"/> says which un-augmented images the batch holds, so features of the frozen backbone (which never
/// change for them) can be computed once and reused; it never carries labels.</summary>
public sealed record EvaluationContext(int TasksTrained, bool[] SeenClassMask, int? TrueTask, bool[]? TrueTaskClassMask,
    SampleIdentity? Samples = null)
{
    /// <summary>Asks learners with routed experts for each sample's choice (<see cref="Prediction.Routing"/>): deployed
    /// models show it; runs leave it off (it would only cost time).</summary>
    public bool ReportRouting { get; init; }
}

/// <summary>The dataset and indices of a batch's samples.</summary>
public sealed record SampleIdentity(ILabelledDataset Dataset, int[] Indices);

/// <summary>Class logits [B, C]; methods that infer the task (HiDe-Prompt, NoRGa) also return it [B] for reporting.
/// For samples that are not classified but scored on their own output (generation tasks, docs/text-tasks.md),
/// <see cref="Scores"/> [B] gives each sample's score in [0, 1], and the trainer sums it instead of counting the logits'
/// argmax hits: 1 or 0 for a right-or-wrong metric (exact match), a fraction for a graded one (ROUGE-L, edit similarity,
/// SARI), so an accuracy-matrix entry is the mean score over the task's samples.</summary>
public sealed record Prediction(Tensor Logits, Tensor? PredictedTask = null) : IDisposable
{
    /// <summary>Per-sample scores [B] in [0, 1] (float, or bool for right/wrong); null: the logits' argmax is scored 1/0.</summary>
    public Tensor? Scores { get; init; }

    /// <summary>The experts each sample was routed to, per routing site; only when <see cref="EvaluationContext.ReportRouting"/>
    /// asks and the method routes (SMoPE's blocks, SAMoE's prompt pool, SETA's task gate).</summary>
    public IReadOnlyList<ExpertChoice>? Routing { get; init; }

    public void Dispose()
    {
        Logits.Dispose(); PredictedTask?.Dispose(); Scores?.Dispose();
        foreach (var choice in Routing ?? []) choice.Dispose();
    }
}

/// <summary>What one routing site (a prompted block, an expert pool, a task gate) chose for each sample of a batch:
/// expert indices [B, K], most weighted first, and their weights [B, K] (the method's mixing weight; for SMoPE, whose
/// experts are chosen per attention head, the share of heads that chose the expert).</summary>
public sealed record ExpertChoice(string Site, Tensor Experts, Tensor Weights) : IDisposable
{
    public void Dispose() { Experts.Dispose(); Weights.Dispose(); }
}

/// <summary>What one training step produced. With <see cref="Logits"/>, the trainer adds the cross-entropy over the
/// phase's class mask (old classes' logits masked out); <see cref="AuxiliaryLoss"/> is added as is.
/// A step that computes its whole loss itself sets <see cref="Logits"/> to null.</summary>
public sealed record StepOutput(Tensor? Logits, Tensor? AuxiliaryLoss = null);

/// <summary>One stretch of training: which parameters, how, for how long, on what data.</summary>
public sealed record TrainingPhase
{
    public required string Name { get; init; }
    public required int Epochs { get; init; }
    public required IReadOnlyList<ParameterGroup> Parameters { get; init; }
    public required OptimizerSettings Optimizer { get; init; }
    public required Func<Data.Batch, StepOutput> Step { get; init; }
    /// <summary>Data to train on; null means the task's training set.</summary>
    public ILabelledDataset? Data { get; init; }
    /// <summary>Classes whose logits take part in the cross-entropy; null means the task's classes.</summary>
    public bool[]? LogitMask { get; init; }
    public bool Augment { get; init; } = true;
    /// <summary>Called once before the first epoch and after each epoch (e.g. to switch modes).</summary>
    public Action<int>? OnEpochStart { get; init; }
}

/// <summary>Cost accounting reported in every run's summary and metrics.json.</summary>
public sealed record MethodCost(
    long TrainableParameters,
    long ParametersAddedPerTask,
    long StateBytes,
    int BackbonePassesPerTestImage);
