using ContinualMoE.Backbones;
using ContinualMoE.LowRank;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// SETA ("Split-on-Share: Mixture of Sparse Experts for Task-Agnostic Continual Learning", arXiv 2601.17616, 2026),
/// designed from its abstract (no code or full text is public; every choice and its reason: docs/methods/seta.md).
/// Low-rank experts on frozen linear layers of the backbone (default q and v): a shared pool used by every input and one
/// unique expert per task; a split-on-share rule moves components that only one task uses into its unique expert;
/// elastic anchoring protects the shared components earlier tasks depend on; a gate on the frozen pooled feature
/// (Gaussian class statistics, no stored data) picks the unique expert at test time without task identity.
///
/// Per task t:
///   begin  t's unique expert joins; for t > 0 the pool's component energies on t's data decide the split-on-share
///          (<see cref="SplitOnShareExperts.SplitAndGrow"/>);
///   train  pool + t's unique expert + head, CE over t's classes + anchor_strength * sum Omega (theta - theta*)^2;
///   end    one pass over t's un-augmented data: squared gradients (Fisher) into Omega, pool energies (ownership),
///          frozen pooled features into the gate's class statistics, adapted features into the head's statistics;
///          t's unique expert is frozen; from t > 0 the head is re-aligned on Gaussian samples of all seen classes;
///   test   gate(frozen pass) -> unique expert weights; adapted pass with pool + chosen unique expert -> head.
/// </summary>
[ContinualMethod("seta", "SETA: shared and unique low-rank experts with split-on-share, elastic anchoring and a task gate (2026, designed from the abstract)",
    Modalities = Data.InputModality.Image | Data.InputModality.Text)]
public sealed class Seta : LearnerBase, IAdapterGrowth
{
    public sealed record Options
    {
        /// <summary>Adapted layers (q, k, v, out, mlp.in, mlp.out, or qv, qkv, attn, mlp, all); LoRA's default is q and v.</summary>
        public string[] Layers { get; init; } = ["q", "v"];
        /// <summary>Adapted blocks; null: all.</summary>
        public int[]? Blocks { get; init; }
        /// <summary>Pool components switched on at the start, and the rank of LoRA's scaling alpha / rank.</summary>
        public int SharedRank { get; init; } = 8;
        /// <summary>Upper bound of the pool (growth switches on more components up to this).</summary>
        public int SharedCapacity { get; init; } = 16;
        /// <summary>Components of each task's own unique expert, trained with its task.</summary>
        public int UniqueRank { get; init; } = 2;
        /// <summary>Components a unique expert can receive from the pool by splits.</summary>
        public int SplitCapacity { get; init; } = 4;
        /// <summary>LoRA alpha; null: the shared rank (scaling 1).</summary>
        public double? Alpha { get; init; }
        public double OwnershipThreshold { get; init; } = 0.5;
        public double ShareThreshold { get; init; } = 0.5;
        public int MinFreeComponents { get; init; } = 2;
        public double AnchorStrength { get; init; } = 1.0;
        /// <summary>gaussian (top-1 of the Gaussian gate), soft (softmax of its per-dimension log-likelihoods), oracle
        /// (the true task: upper bound of the ablation), uniform (every seen task's expert at 1/t: lower bound).</summary>
        public string Gate { get; init; } = "gaussian";
        public double GateShrinkage { get; init; } = 0.1;
        // Switches of the ablation.
        /// <summary>False: no unique experts and no splits, everything in the shared pool (one pass per test image).</summary>
        public bool Split { get; init; } = true;
        public bool Anchoring { get; init; } = true;
        public bool GrowShared { get; init; } = true;
        public bool ClassifierAlignment { get; init; } = true;
        public int AlignmentEpochs { get; init; } = 20;
        public double AlignmentLearningRate { get; init; } = 0.01;
        public int AlignmentSamplesPerClass { get; init; } = 256;
        public int? Epochs { get; init; }
        public double? LearningRate { get; init; }
    }

    private readonly Options options;
    private readonly SetaModel model;

    public Seta(MethodContext context) : this(context, context.Settings.Bind(new Options(), "seta")) { }

    private Seta(MethodContext context, Options options) : this(context, Validate(options), new SetaModel(context, options)) { }

    private Seta(MethodContext context, Options options, SetaModel model) : base(context, model)
    {
        this.options = options;
        this.model = model;
    }

    public override string Name => "seta";
    public SplitOnShareExperts Experts => model.Experts;
    public GaussianTaskGate TaskGate => model.Gate;
    public Options Settings => options;
    /// <summary>Split and grown pool components before each task (reporting).</summary>
    public IReadOnlyList<(int Split, int Grown)> SplitHistory => splitHistory;
    private readonly List<(int Split, int Grown)> splitHistory = [];

    private int Epochs => options.Epochs ?? Context.Training.Epochs;
    private double Rate => options.LearningRate ?? Context.Training.LearningRate;
    private bool UsesUniqueExperts => options.Split;

    private static Options Validate(Options o)
    {
        if (o.SharedRank < 1 || o.SharedCapacity < o.SharedRank)
            throw new ContinualMoEException($"seta: shared_rank must be at least 1 and at most shared_capacity ({o.SharedCapacity}), got {o.SharedRank}");
        if (o.UniqueRank < 0 || o.SplitCapacity < 0) throw new ContinualMoEException("seta: unique_rank and split_capacity must not be negative");
        if (o.Gate is not ("gaussian" or "soft" or "oracle" or "uniform"))
            throw new ContinualMoEException($"seta: gate must be gaussian, soft, oracle or uniform, got '{o.Gate}'");
        return o;
    }

    public override void BeginTask(TaskContext task)
    {
        if (!UsesUniqueExperts) return;
        model.Experts.BeginTask(task.TaskIndex);
        if (task.IsFirstTask) return;
        // The pool's component energies on the new task's data (no labels, no gradients): which components it shares.
        var bank = model.Experts.Bank;
        bank.SampleWeights = PoolOnly(1);
        bank.StartEnergy(0);
        using (no_grad())
            foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
                using (batch) model.Readout.Pooled(batch, bank).Dispose();
        using var probe = bank.StopEnergy();
        bank.SampleWeights = null;
        splitHistory.Add(model.Experts.SplitAndGrow(task.TaskIndex, probe));
    }

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task)
    {
        var experts = model.Experts.Bank.TrainableParameters(UsesUniqueExperts ? [0, 1 + task.TaskIndex] : [0]);
        return
        [
            new TrainingPhase
            {
                Name = "seta",
                Epochs = Epochs,
                Parameters = [new ParameterGroup("experts", experts), .. HeadGroup],
                Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = Rate, Schedule = ScheduleKind.Cosine },
                Step = batch => TrainStep(batch, task),
            },
        ];
    }

    private IReadOnlyList<ParameterGroup> HeadGroup => model.Readout.Head is null ? [] : [new ParameterGroup("head", model.Readout.HeadParameters)];

    private StepOutput TrainStep(Data.Batch batch, TaskContext task)
    {
        Tensor? anchoring = null;
        if (options.Anchoring && !task.IsFirstTask && options.AnchorStrength > 0)
            anchoring = model.Experts.Anchor.Penalty().mul(Scalars.Of(options.AnchorStrength));
        model.Experts.Bank.SampleWeights = TaskOnly(task.TaskIndex, 1);
        var output = model.Readout.TrainingOutput(batch, model.Experts.Bank, anchoring);
        model.Experts.Bank.SampleWeights = null;
        return output;
    }

    /// <summary>Expert weights [rows, E] with the pool and task <paramref name="t"/>'s unique expert at 1.</summary>
    private Tensor TaskOnly(int t, long rows)
    {
        var taskWeights = zeros(rows, Context.TaskCount);
        if (UsesUniqueExperts) taskWeights[.., t] = ones(rows);
        return model.Experts.ExpertWeights(taskWeights);
    }

    private Tensor PoolOnly(long rows) => model.Experts.ExpertWeights(zeros(rows, Context.TaskCount));

    /// <summary>The frozen backbone's pooled representation of a batch (the gate's input), cached per sample in evaluation.</summary>
    private Tensor FrozenPooled(Data.Batch batch, EvaluationContext? context = null) =>
        FrozenFeatures(() => model.Readout.Pooled(batch, null), context);

    public override void EndTask(TaskContext task)
    {
        var bank = model.Experts.Bank;
        using var adapted = new PerClassFeatures();
        using var frozen = new PerClassFeatures();
        var trainable = bank.TrainableParameters([0]);
        bank.StartEnergy(0);
        foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                // Squared gradients of the task's loss on the pool (the anchoring's Fisher), as EWC estimates it per batch.
                foreach (var p in trainable) p.grad?.zero_();
                bank.SampleWeights = TaskOnly(task.TaskIndex, 1);
                var (loss, features) = model.Readout.LossAndPooled(batch, bank, task.TaskClassMask);
                bank.SampleWeights = null;
                loss.backward();
                model.Experts.Anchor.AccumulateSquaredGradients();
                var pooled = FrozenPooled(batch);
                var labels = batch.Labels.cpu().data<long>().ToArray();
                // The adapted features' class statistics serve the head's re-alignment only.
                if (HasHead) adapted.Add(features, labels);
                frozen.Add(pooled, labels);
            }
        }
        foreach (var p in bank.TrainableParameters()) p.grad?.zero_();
        foreach (var p in model.Readout.HeadParameters) p.grad?.zero_();
        using var energy = bank.StopEnergy();
        model.Experts.EndTask(task.TaskIndex, energy);
        if (!options.Anchoring) model.Experts.Anchor.MoveAnchor();
        frozen.ForEachClass((label, stacked) => model.Gate.AddClass(label, task.TaskIndex, stacked));
        adapted.ForEachClass(model.Statistics.Set);
        using (no_grad()) model.TasksTrained.fill_(task.TaskIndex + 1);
        using (no_grad()) model.ParametersAfterTask[task.TaskIndex].fill_(model.Experts.Bank.ActiveParameterCount());
        if (options.ClassifierAlignment && !task.IsFirstTask && model.Readout.Head is { } head)
        {
            var seen = task.SeenClasses.Where(model.Statistics.IsKnown).ToList();
            ClassifierAlignment.Run(head.forward, [new ParameterGroup("head", TrainableParameters(head))],
                model.Statistics, seen, task.SeenClassMask,
                new AlignmentSettings(options.AlignmentEpochs, options.AlignmentSamplesPerClass, Context.Training.BatchSize,
                    ClassifierAlignment.SgdCosine(options.AlignmentLearningRate)),
                task.Seed);
        }
    }

    private bool HasHead => model.Readout.Head is not null;

    public override Prediction Predict(Tensor images, EvaluationContext context) => Predict(Data.Batch.OfInputs(images), context);

    public override Prediction Predict(Data.Batch batch, EvaluationContext context)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var tasksTrained = context.TasksTrained;
        Tensor? predictedTask = null;
        ExpertChoice? gateChoice = null;
        if (UsesUniqueExperts)
        {
            var taskWeights = GateWeights(batch, context, tasksTrained, out predictedTask);
            model.Experts.Bank.SampleWeights = model.Experts.ExpertWeights(taskWeights);
            if (context.ReportRouting) gateChoice = GateChoice(taskWeights, tasksTrained);
        }
        else model.Experts.Bank.SampleWeights = null;
        Prediction adapted;
        try { adapted = model.Readout.Predict(batch, model.Experts.Bank, context); }
        finally { model.Experts.Bank.SampleWeights = null; }
        return new Prediction(adapted.Logits.MoveToOuterDisposeScope(), predictedTask?.MoveToOuterDisposeScope())
        {
            Scores = adapted.Scores?.MoveToOuterDisposeScope(),
            Routing = gateChoice is null ? null : [gateChoice with { Experts = gateChoice.Experts.MoveToOuterDisposeScope(), Weights = gateChoice.Weights.MoveToOuterDisposeScope() }],
        };
    }

    /// <summary>The task experts the gate weighs most for each sample: the one chosen (hard and oracle gates), or the
    /// up to three heaviest (soft and uniform gates), with their gate weights.</summary>
    private ExpertChoice GateChoice(Tensor taskWeights, int tasksTrained)
    {
        var k = options.Gate is "soft" or "uniform" ? Math.Min(3, tasksTrained) : 1;
        var (weights, tasks) = taskWeights.narrow(1, 0, tasksTrained).topk(k, dim: -1);
        return new ExpertChoice("task experts", tasks, weights);
    }

    /// <summary>Unique-expert weights [B, T] over the tasks trained so far, by the configured gate.</summary>
    public Tensor GateWeights(Data.Batch inputs, EvaluationContext context, int tasksTrained, out Tensor? predictedTask)
    {
        long batch = inputs.Count;
        var seen = zeros(Context.TaskCount, dtype: ScalarType.Bool);
        seen.narrow(0, 0, tasksTrained).fill_(true);
        predictedTask = null;
        switch (options.Gate)
        {
            case "uniform":
                return seen.to(float32).div(Scalars.Of(tasksTrained)).unsqueeze(0).expand(batch, -1).contiguous();
            case "oracle":
            {
                var tasks = TrueTasks(context, batch);
                predictedTask = tasks;
                return nn.functional.one_hot(tasks, Context.TaskCount).to(float32);
            }
            default:
            {
                var logits = model.Gate.Logits(FrozenPooled(inputs, context)).masked_fill(seen.logical_not(), Scalars.NegativeInfinity);
                predictedTask = logits.argmax(-1);
                if (options.Gate == "soft")
                    return logits.div(Scalars.Of(model.Readout.Width)).softmax(-1).nan_to_num();
                return nn.functional.one_hot(predictedTask, Context.TaskCount).to(float32);
            }
        }
    }

    /// <summary>The true task of each test image (oracle ablation only): given in task-incremental scenarios, otherwise
    /// read from the dataset's labels through the gate's class-to-task map.</summary>
    private Tensor TrueTasks(EvaluationContext context, long batch)
    {
        if (context.TrueTask is int t) return full(batch, (long)t, dtype: int64);
        if (context.Samples is not { } samples)
            throw new ContinualMoEException("seta: gate=oracle needs the evaluated samples' identity (only the trainer's evaluation provides it)");
        var labels = tensor(samples.Indices.Select(i => (long)samples.Dataset.GetLabel(i)).ToArray());
        return model.Gate.TaskOfClass.index_select(0, labels).clamp_min(Scalars.Integer(0));
    }

    public override void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        base.LoadState(state);
        model.Experts.Bank.SyncFromState();
    }

    /// <summary>Trainable numbers in use after each finished task (adapters only), for the growth curve.</summary>
    public IReadOnlyList<long> ParametersAfterTask =>
        model.ParametersAfterTask.narrow(0, 0, (long)model.TasksTrained.item<float>()).data<float>().Select(v => (long)v).ToList();

    public IReadOnlyList<(string Site, int Shared, int Unique)> ComponentsPerSite =>
        model.Experts.ComponentsPerSite().Select((c, i) => (model.Experts.Sites[i].Site.ToString(), c.Shared, c.Unique)).ToList();

    /// <summary>What one task's own expert would cost at the same capacity (shared + unique rank at every site).</summary>
    public long OneTaskExpertParameters =>
        model.Experts.Sites.Sum(s => (s.InFeatures + s.OutFeatures) * (options.SharedRank + (UsesUniqueExperts ? options.UniqueRank : 0)));

    /// <summary>Adapters in use and head; statistics are state, not parameters. Two passes per test image with the gate
    /// (frozen pooled feature, then the adapted pass), one without.</summary>
    public override MethodCost Cost(int tasksTrained)
    {
        var adapters = model.Experts.Bank.ActiveParameterCount();
        var trainable = adapters + model.Readout.HeadParameters.Sum(p => p.numel());
        var bytes = model.state_dict().Values.Sum(t => t.numel() * t.element_size());
        var history = ParametersAfterTask;
        var perTask = history.Count > 1 ? (history[^1] - history[0]) / (history.Count - 1) : 0;
        return new MethodCost(trainable, perTask, bytes, UsesUniqueExperts && options.Gate is "gaussian" or "soft" ? 2 : 1);
    }

    private sealed class SetaModel : nn.Module
    {
        public readonly SplitOnShareExperts Experts;
        public readonly AdaptedReadout Readout;
        public readonly GaussianClassStatistics Statistics;
        public readonly GaussianTaskGate Gate;
        [TorchSharp.Utils.ComponentName(Name = "tasks_trained")]
        public readonly Tensor TasksTrained;
        [TorchSharp.Utils.ComponentName(Name = "parameters_after_task")]
        public readonly Tensor ParametersAfterTask;

        public SetaModel(MethodContext context, Options options) : base(nameof(SetaModel))
        {
            var backbone = context.AdaptableBackbone;
            var sites = LowRankSites.Select(backbone, options.Layers, options.Blocks, "seta");
            torch.random.manual_seed(context.Seed);
            var split = options.Split;
            Experts = new SplitOnShareExperts(sites, context.TaskCount, new SplitOnShareSettings(
                options.SharedRank, options.SharedCapacity, split ? options.UniqueRank : 0, split ? options.SplitCapacity : 0,
                options.Alpha ?? options.SharedRank, options.OwnershipThreshold, options.ShareThreshold, options.MinFreeComponents,
                options.GrowShared));
            Readout = context.NewReadout();
            Statistics = new GaussianClassStatistics(context.ClassCount, (int)backbone.Width, CovarianceKind.Diagonal);
            Gate = new GaussianTaskGate(context.ClassCount, (int)backbone.Width, context.TaskCount, options.GateShrinkage);
            TasksTrained = zeros(1);
            ParametersAfterTask = zeros(context.TaskCount);
            register_module("experts", Experts);
            if (Readout.Head is { } head) register_module("head", head);
            register_module("statistics", Statistics);
            register_module("gate", Gate);
            register_buffer("tasks_trained", TasksTrained);
            register_buffer("parameters_after_task", ParametersAfterTask);
        }
    }
}
