using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// SAMoE (Mclaughlin, Lee, Su, "Similarity-Aware Mixture-of-Experts for Data-Efficient Continual Learning",
/// arXiv 2603.23436, 2026), built from the abstract only (no code or full text is public; docs/methods/samoe.md lists
/// every design choice and which ones are guesses). Tasks may have few samples and may overlap arbitrarily; the learner
/// is not told. An adaptive mixture of prefix-prompt experts over a frozen backbone:
///
///   begin task: q_i = frozen class token of every (un-augmented) training sample; s_im = cos(q_i, k_m) for the active
///               experts; z_im = (s_im - mean_m) / std_m under the moments of the similarities expert m served;
///               sample i is in-distribution (ID) when max_m z_im >= -tau, out-of-distribution (OOD) otherwise.
///               Incremental global pooling: when the OOD samples are a real share of the task, they are clustered
///               (spherical k-means) into ceil(#OOD / samples_per_expert) new experts (capped), keys = centroids,
///               prompts orthogonal to the earlier experts'. A task that repeats seen data adds none.
///   train:      each sample uses its top-k experts by z, fixed for the task. Instance-wise prompt masking: ID samples
///               may only use old experts (reuse, at reuse_rate x the prompt learning rate), OOD samples only the new
///               ones; an OOD sample left without new experts uses old prompts detached, so no OOD sample ever sends
///               gradient to an old expert. Experts no sample of the task trains are not in the optimiser at all.
///               Loss: cross-entropy over the task's classes.
///   end task:   the similarities of the samples each expert served join its moments; class statistics of the
///               prompted features are merged (a class seen again adds to its count, sum and second moment); from the
///               second task on the head is re-aligned on Gaussian samples of all seen classes (as SMoPE).
///   inference:  task-agnostic top-k over the whole pool by z; two backbone passes (query, then prompted).
/// </summary>
// bf16 outside the 0.3-point bound since session 14 (docs/methods/precision.md): embedded default -0.5, split
// Fashion-MNIST +0.2; so precision: auto keeps fp32 for it.
[ContinualMethod("samoe", "SAMoE: a growing pool of prefix-prompt experts with calibrated in/out-of-distribution masking (arXiv 2603.23436, from the abstract)")]
public sealed class Samoe : LearnerBase, IExpertPoolGrowth
{
    public sealed record Options
    {
        /// <summary>Prompted blocks (as SMoPE: 0-5); blocks beyond the backbone's depth are dropped.</summary>
        public int[] Blocks { get; init; } = [0, 1, 2, 3, 4, 5];
        /// <summary>Pool capacity, allocated up front; experts enter it as data needs them.</summary>
        public int MaxExperts { get; init; } = 20;
        /// <summary>Prompt length L per block: L/2 prefix keys and L/2 prefix values (10 = SMoPE's 5 active experts).</summary>
        public int PromptLength { get; init; } = 10;
        /// <summary>Experts mixed per sample (weights: softmax of cosine similarity / routing_temperature).</summary>
        public int TopK { get; init; } = 1;
        public double RoutingTemperature { get; init; } = 0.1;
        /// <summary>tau: a sample is in-distribution for expert m when its similarity is at most tau of m's standard
        /// deviations below the mean similarity of the samples m served.</summary>
        public double OodThreshold { get; init; } = 3.0;
        /// <summary>Floor of an expert's similarity standard deviation (few-shot experts have too few samples to estimate it).</summary>
        public double MinSimilarityStd { get; init; } = 0.01;
        /// <summary>One new expert per this many out-of-distribution samples (at least one, at most max_new_experts_per_task).</summary>
        public int SamplesPerExpert { get; init; } = 200;
        public int MaxNewExpertsPerTask { get; init; } = 2;
        /// <summary>Out-of-distribution share of a task below which no expert is added (stray outliers do not grow the pool).</summary>
        public double MinNovelShare { get; init; } = 0.1;
        public int KMeansIterations { get; init; } = 10;
        // Switches for the ablation.
        /// <summary>Experts enter the pool over time. Off: all max_experts are made from the first task's samples and the pool never grows.</summary>
        public bool IncrementalPool { get; init; } = true;
        /// <summary>Instance-wise prompt masking. Off: every sample routes over the whole pool and trains what it uses.</summary>
        public bool InstanceMasking { get; init; } = true;
        /// <summary>Learning-rate factor for old experts reused by in-distribution samples (0: reuse them frozen).</summary>
        public double ReuseRate { get; init; } = 0.5;
        /// <summary>An expert's similarity moments come only from the task that created it. Off: every later sample it
        /// serves joins them, which widens an expert that absorbs several tasks until it accepts almost any query
        /// (the self-reinforcing acceptance of docs/methods/samoe.md, "What one few-shot run shows about growth").</summary>
        public bool MomentsFromCreatingTask { get; init; }
        /// <summary>Queries are centred by the first task's mean query before matching. Off by default: the calibrated
        /// test already measures similarity in each expert's own spread, and centring widens that spread.</summary>
        public bool CenterQueries { get; init; }
        /// <summary>New keys are the centroid's part orthogonal to the existing keys (off: the centroid itself).</summary>
        public bool OrthogonalKeys { get; init; }
        /// <summary>New prompts are Gram-Schmidt orthogonal to the existing experts' prompts (CODA-Prompt's init).</summary>
        public bool OrthogonalPrompts { get; init; } = true;
        public bool ClassifierAlignment { get; init; } = true;
        public int AlignmentEpochs { get; init; } = 20;
        public double AlignmentLearningRate { get; init; } = 0.01;
        public int AlignmentSamplesPerClass { get; init; } = 256;
        public int? Epochs { get; init; }
        /// <summary>The head's learning rate; the prompts' is <see cref="PromptRateMultiplier"/> times it.</summary>
        public double? LearningRate { get; init; }
        public double PromptRateMultiplier { get; init; } = 1.0;
    }

    private readonly Options options;
    private readonly SamoeModel model;
    private TaskRouting? current;

    public Samoe(MethodContext context) : this(context, Validate(context.Settings.Bind(new Options(), "samoe"))) { }
    private Samoe(MethodContext context, Options options) : this(context, options, new SamoeModel(context, options)) { }
    private Samoe(MethodContext context, Options options, SamoeModel model) : base(context, model)
    {
        this.options = options;
        this.model = model;
    }

    private static Options Validate(Options o)
    {
        static void Require(bool ok, string message) { if (!ok) throw new ContinualMoEException($"samoe: {message}"); }
        Require(o.MaxExperts >= 1, $"max_experts must be at least 1, got {o.MaxExperts}");
        Require(o.TopK >= 1 && o.TopK <= o.MaxExperts, $"top_k must be between 1 and max_experts ({o.MaxExperts}), got {o.TopK}");
        Require(o.RoutingTemperature > 0, $"routing_temperature must be positive, got {o.RoutingTemperature}");
        Require(o.OodThreshold > 0, $"ood_threshold must be positive, got {o.OodThreshold}");
        Require(o.MinSimilarityStd > 0, $"min_similarity_std must be positive, got {o.MinSimilarityStd}");
        Require(o.SamplesPerExpert >= 1, $"samples_per_expert must be at least 1, got {o.SamplesPerExpert}");
        Require(o.MaxNewExpertsPerTask >= 1, $"max_new_experts_per_task must be at least 1, got {o.MaxNewExpertsPerTask}");
        Require(o.MinNovelShare is >= 0 and <= 1, $"min_novel_share must be between 0 and 1, got {o.MinNovelShare}");
        Require(o.ReuseRate is >= 0 and <= 1, $"reuse_rate must be between 0 and 1, got {o.ReuseRate}");
        Require(o.KMeansIterations >= 0, $"k_means_iterations must not be negative, got {o.KMeansIterations}");
        Require(o.PromptRateMultiplier > 0, $"prompt_rate_multiplier must be positive, got {o.PromptRateMultiplier}");
        return o;
    }

    public override string Name => "samoe";
    public ExpertPromptPool Pool => model.Pool;
    public Linear Head => model.Head;
    /// <summary>The routing of the task being trained (between BeginTask and EndTask), for inspection and tests.</summary>
    public TaskRouting? CurrentRouting => current;

    private int Epochs => options.Epochs ?? Context.Training.Epochs;
    private double HeadRate => options.LearningRate ?? Context.Training.LearningRate;

    /// <summary>How every training sample of the current task is routed (rows are the training set's indices).</summary>
    public sealed record TaskRouting(Tensor Experts, Tensor Weights, Tensor Trainable, Tensor InDistribution, Tensor CountsInMoments,
        Tensor Top1Similarity, int NewExpertsStart, int NewExpertsEnd, IReadOnlyList<int> NewTrained, IReadOnlyList<int> ReusedTrained) : IDisposable
    {
        public int ExpertsAdded => NewExpertsEnd - NewExpertsStart;
        public void Dispose() { Experts.Dispose(); Weights.Dispose(); Trainable.Dispose(); InDistribution.Dispose(); CountsInMoments.Dispose(); Top1Similarity.Dispose(); }
    }

    public override void BeginTask(TaskContext task)
    {
        current?.Dispose();
        var pool = model.Pool;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var queries = TaskQueries(task);                                                   // [N, D]
        var n = queries.shape[0];
        if (n == 0) throw new ContinualMoEException($"samoe: task {task.TaskIndex + 1} has no training samples");
        var moments = pool.Moments.Copy();
        var oldActive = pool.ActiveCount;
        if (oldActive == 0 && options.CenterQueries) pool.QueryCenter.copy_(queries.mean([0]));

        // 1. Calibrated in-distribution test against the experts the pool has now.
        var inDistribution = oldActive == 0
            ? zeros(n, dtype: ScalarType.Bool, device: queries.device)
            : ExpertPromptPool.CalibratedScores(pool.Similarity(queries), moments, options.MinSimilarityStd)
                .max(1).values.ge(Scalars.Of(-options.OodThreshold));
        var outOfDistribution = inDistribution.logical_not();
        var oodCount = outOfDistribution.sum().item<long>();

        // 2. Incremental global pooling: the out-of-distribution samples decide how many experts enter.
        var fixedPoolStart = !options.IncrementalPool && oldActive == 0;
        int newStart = oldActive, newEnd = oldActive;
        if (fixedPoolStart || (options.IncrementalPool && oodCount > 0 && oodCount >= options.MinNovelShare * n && pool.FreeCapacity > 0))
        {
            var wanted = fixedPoolStart
                ? options.MaxExperts
                : (int)Math.Min(Math.Min(Math.Ceiling(oodCount / (double)options.SamplesPerExpert), options.MaxNewExpertsPerTask), pool.FreeCapacity);
            var members = outOfDistribution.nonzero().squeeze(1);                                // [n_ood]
            var (centroids, assignment) = ExpertPromptPool.SphericalKMeans(pool.Centre(queries.index_select(0, members)), Math.Max(1, wanted), options.KMeansIterations);
            (newStart, newEnd) = pool.Add(centroids, task.TaskIndex, options.OrthogonalKeys, options.OrthogonalPrompts);
            // Provisional moments of the new experts, from the samples that made them, so that routing this task can
            // already score them (the stored moments are written at the end of the task).
            var ownExpert = assignment + newStart;
            var ownSimilarity = pool.Similarity(queries.index_select(0, members)).gather(1, ownExpert.unsqueeze(1)).squeeze(1);
            ExpertPromptPool.Accumulate(moments, ownExpert, ownSimilarity);
        }
        var hasNew = newEnd > newStart;

        // 3. Instance-wise prompt masking: which experts each sample may use and whether it may train them.
        var active = pool.ActiveCount;
        var similarity = pool.Similarity(queries);                                             // [N, A]
        var z = ExpertPromptPool.CalibratedScores(similarity, moments, options.MinSimilarityStd);
        var served = moments.Count.narrow(0, 0, active).gt(Scalars.Of(0)).to(queries.device);  // [A]
        var isNew = Scalars.Arange(active, device: queries.device).ge(Scalars.Of(newStart)).logical_and(served);
        var oldServed = served.logical_and(isNew.logical_not());
        Tensor allowed, trainable, counted;
        if (options.InstanceMasking)
        {
            var idRows = inDistribution.unsqueeze(1);
            var oodExperts = hasNew ? isNew : oldServed;    // OOD samples without new experts use old ones, detached
            allowed = where(idRows, oldServed.unsqueeze(0).expand(n, active), oodExperts.unsqueeze(0).expand(n, active));
            trainable = where(inDistribution, Flags(n, options.ReuseRate > 0, queries.device), Flags(n, hasNew, queries.device));
            counted = inDistribution.logical_or(Flags(n, hasNew, queries.device));
        }
        else
        {
            allowed = served.unsqueeze(0).expand(n, active);
            trainable = ones(n, dtype: ScalarType.Bool, device: queries.device);
            counted = ones(n, dtype: ScalarType.Bool, device: queries.device);
        }
        var (experts, weights) = Route(similarity, z, allowed);

        // Experts trained this task: new ones at the prompt rate, reused old ones at reuse_rate times it (with masking).
        var trainedExperts = experts.masked_select(weights.gt(Scalars.Of(0)).logical_and(trainable.unsqueeze(1)))
            .unique().output.cpu().data<long>().Select(x => (int)x).ToList();
        var newTrained = trainedExperts.Where(m => m >= newStart && m < newEnd).ToList();
        var reusedTrained = trainedExperts.Where(m => m < newStart || m >= newEnd).ToList();
        var top1Similarity = similarity.gather(1, experts.narrow(1, 0, 1)).squeeze(1);
        current = new TaskRouting(experts.DetachFromDisposeScope(), weights.DetachFromDisposeScope(), trainable.DetachFromDisposeScope(),
            inDistribution.DetachFromDisposeScope(), counted.DetachFromDisposeScope(), top1Similarity.DetachFromDisposeScope(),
            newStart, newEnd, newTrained, reusedTrained);
    }

    private static Tensor Flags(long n, bool value, Device device) =>
        value ? ones(n, dtype: ScalarType.Bool, device: device) : zeros(n, dtype: ScalarType.Bool, device: device);

    /// <summary>Top-k experts per row by calibrated score among the allowed ones ([N, A] masks); weights are the softmax of
    /// their cosine similarities / temperature. A row with no allowed expert may use any expert that has served.</summary>
    private (Tensor Experts, Tensor Weights) Route(Tensor similarity, Tensor z, Tensor allowed)
    {
        var usable = z.isfinite();
        var none = allowed.logical_and(usable).any(1, keepdim: true).logical_not();
        var mask = where(none, usable, allowed.logical_and(usable));
        var k = (int)Math.Min(options.TopK, similarity.shape[1]);
        var (topScores, experts) = z.masked_fill(mask.logical_not(), Scalars.NegativeInfinity).topk(k, dim: 1);
        var logits = similarity.gather(1, experts).div(Scalars.Of(options.RoutingTemperature))
            .masked_fill(topScores.isfinite().logical_not(), Scalars.NegativeInfinity);
        return (experts, softmax(logits, 1));
    }

    /// <summary>Frozen query features [N, D] of the task's training samples, un-augmented, rows in dataset order.</summary>
    private Tensor TaskQueries(TaskContext task)
    {
        var rows = new Tensor[task.Train.Count];
        foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
        {
            using (batch)
            {
                var features = FrozenFeatures(batch.Images);
                for (var r = 0; r < batch.Indices.Length; r++) rows[batch.Indices[r]] = features[r];
            }
        }
        return stack(rows);
    }

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task)
    {
        var routing = current ?? throw new InvalidOperationException("samoe: TrainingPhases before BeginTask");
        var prompts = model.Pool.Prompts;
        var promptRate = options.PromptRateMultiplier;
        var groups = new List<ParameterGroup>();
        if (routing.NewTrained.Count > 0)
            groups.Add(new ParameterGroup("new experts", routing.NewTrained.Select(m => prompts[m]).ToList(), promptRate));
        if (routing.ReusedTrained.Count > 0)
            groups.Add(new ParameterGroup("reused experts", routing.ReusedTrained.Select(m => prompts[m]).ToList(),
                options.InstanceMasking ? promptRate * options.ReuseRate : promptRate));
        groups.Add(new ParameterGroup("head", TrainableParameters(model.Head)));
        return
        [
            new TrainingPhase
            {
                Name = "experts",
                Epochs = Epochs,
                Parameters = groups,
                // As SMoPE: AdamW without weight decay (so experts outside this task's groups cannot drift) and a cosine schedule.
                Optimizer = new OptimizerSettings { Kind = OptimizerKind.AdamW, LearningRate = HeadRate, WeightDecay = 0, Schedule = ScheduleKind.Cosine },
                Step = batch => new StepOutput(model.Head.forward(PromptedFeatures(batch.Images, RoutingOf(routing, batch.Indices)))),
            },
        ];
    }

    private static (Tensor Experts, Tensor Weights, Tensor Trainable) RoutingOf(TaskRouting routing, int[] indices)
    {
        var rows = tensor(indices.Select(i => (long)i).ToArray(), dtype: int64, device: routing.Experts.device);
        return (routing.Experts.index_select(0, rows), routing.Weights.index_select(0, rows), routing.Trainable.index_select(0, rows));
    }

    private Tensor PromptedFeatures(Tensor images, (Tensor Experts, Tensor Weights, Tensor Trainable) routing)
    {
        var prefixes = model.Pool.Prefixes(routing.Experts, routing.Weights, routing.Trainable);
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = prefixes });
        return output.Cls.clone();
    }

    public override void EndTask(TaskContext task)
    {
        var routing = current ?? throw new InvalidOperationException("samoe: EndTask before BeginTask");
        var pool = model.Pool;
        using (no_grad())
        using (NewDisposeScope())
        {
            // Moments: every sample its top-1 expert served (masked OOD samples that only borrowed an old prompt do not
            // widen that expert's distribution).
            var top1 = routing.Experts.select(1, 0);
            var countsInMoments = options.MomentsFromCreatingTask
                ? routing.CountsInMoments.logical_and(top1.ge(Scalars.Of(routing.NewExpertsStart)).logical_and(top1.lt(Scalars.Of(routing.NewExpertsEnd))))
                : routing.CountsInMoments;
            var counted = countsInMoments.nonzero().squeeze(1);
            ExpertPromptPool.Accumulate(pool.Moments, top1.index_select(0, counted), routing.Top1Similarity.index_select(0, counted));
            if (task.TaskIndex < model.Usage.shape[0])
            {
                model.Usage[task.TaskIndex].index_add_(0, top1.to(model.Usage.device), ones(top1.shape[0], dtype: float64, device: model.Usage.device), Scalars.Of(1));
                var id = routing.InDistribution.sum().item<long>();
                model.Split[task.TaskIndex][0].fill_(id);
                model.Split[task.TaskIndex][1].fill_(routing.InDistribution.shape[0] - id);
            }
            // Class statistics of the prompted features, merged batch by batch into what earlier tasks saw of the same
            // classes (the rounding of the fit this method has always made along the pass).
            using var perClass = new PerClassFeatures();
            foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
            {
                using (batch)
                using (NewDisposeScope())
                    perClass.Add(PromptedFeatures(batch.Images, RoutingOf(routing, batch.Indices)), batch.Labels.cpu().data<long>().ToArray());
            }
            perClass.MergeBatchByBatchInto(model.Statistics);
        }
        if (options.ClassifierAlignment && !task.IsFirstTask) AlignHead(task);
        routing.Dispose();
        current = null;
    }

    /// <summary>SMoPE's classifier alignment on Gaussian samples of every seen class, from the merged moments.</summary>
    private void AlignHead(TaskContext task)
    {
        var seen = task.SeenClasses.Where(model.Statistics.IsKnown).ToList();
        if (seen.Count == 0) return;
        ClassifierAlignment.Run(model.Head.forward, [new ParameterGroup("head", TrainableParameters(model.Head))], model.Statistics, seen, task.SeenClassMask,
            new AlignmentSettings(options.AlignmentEpochs, options.AlignmentSamplesPerClass, Context.Training.BatchSize,
                ClassifierAlignment.SgdCosine(options.AlignmentLearningRate)),
            task.Seed);
    }

    public override Prediction Predict(Tensor images, EvaluationContext context)
    {
        var pool = model.Pool;
        if (pool.ActiveCount == 0)
        {
            using var plain = Backbone.ForwardFeatures(images);
            return new Prediction(model.Head.forward(plain.Cls));
        }
        using var query = FrozenFeatures(images, context);
        var similarity = pool.Similarity(query);
        var z = ExpertPromptPool.CalibratedScores(similarity, pool.Moments, options.MinSimilarityStd);
        var (experts, weights) = Route(similarity, z, ones_like(similarity, dtype: ScalarType.Bool));
        var frozen = zeros(images.shape[0], dtype: ScalarType.Bool, device: images.device);
        return new Prediction(model.Head.forward(PromptedFeatures(images, (experts, weights, frozen))))
        {
            Routing = context.ReportRouting ? [new ExpertChoice("prompt pool", experts, weights)] : null,
        };
    }

    /// <summary>The experts (top-1) the pool would give these images at test time, [B].</summary>
    public Tensor RouteForTest(Tensor images)
    {
        using var noGrad = no_grad();
        using var query = FrozenFeatures(images);
        var similarity = model.Pool.Similarity(query);
        var z = ExpertPromptPool.CalibratedScores(similarity, model.Pool.Moments, options.MinSimilarityStd);
        return Route(similarity, z, ones_like(similarity, dtype: ScalarType.Bool)).Experts.select(1, 0);
    }

    protected override int BackbonePassesPerTestImage => 2;

    /// <summary>Trainable parameters are the active experts' prompts and the head; unused capacity, keys, moments and
    /// class statistics are state, not learned parameters.</summary>
    public override MethodCost Cost(int tasksTrained)
    {
        var bytes = model.state_dict().Values.Sum(t => t.numel() * t.element_size());
        var experts = model.Pool.ActiveCount * model.Pool.ParametersPerExpert;
        return new MethodCost(experts + HeadParameters, experts / Math.Max(1, tasksTrained), bytes, 2);
    }

    private long HeadParameters => model.Head.parameters().Sum(p => p.numel());

    public ExpertPoolHistory PoolHistory
    {
        get
        {
            using var noGrad = no_grad();
            var split = model.Split.cpu().data<long>().ToArray();
            var finished = Enumerable.Range(0, (int)model.Split.shape[0]).Where(t => split[2 * t] + split[2 * t + 1] > 0).ToList();
            var created = model.Pool.CreatedAtTask.cpu().data<long>().ToArray();
            var tasks = finished.Select(t =>
            {
                var active = created.Count(c => c >= 0 && c <= t);
                return new ExpertPoolTask(t, created.Count(c => c == t), active, (int)split[2 * t], (int)split[2 * t + 1],
                    active * model.Pool.ParametersPerExpert + HeadParameters);
            }).ToList();
            var usageAll = model.Usage.cpu().data<double>().ToArray();
            var capacity = model.Pool.Capacity;
            var usage = new double[finished.Count, capacity];
            for (var r = 0; r < finished.Count; r++)
            {
                var row = usageAll.AsSpan(finished[r] * capacity, capacity);
                var total = 0.0;
                foreach (var v in row) total += v;
                for (var m = 0; m < capacity; m++) usage[r, m] = total > 0 ? row[m] / total : 0;
            }
            var similarity = new double[finished.Count, finished.Count];
            for (var i = 0; i < finished.Count; i++)
                for (var j = 0; j < finished.Count; j++)
                {
                    double dot = 0, ni = 0, nj = 0;
                    for (var m = 0; m < capacity; m++) { dot += usage[i, m] * usage[j, m]; ni += usage[i, m] * usage[i, m]; nj += usage[j, m] * usage[j, m]; }
                    similarity[i, j] = ni > 0 && nj > 0 ? dot / Math.Sqrt(ni * nj) : 0;
                }
            return new ExpertPoolHistory(capacity, tasks, usage, similarity);
        }
    }

    public override void Dispose()
    {
        current?.Dispose();
        base.Dispose();
    }

    /// <summary>Everything SAMoE learns or keeps: the pool (keys, prompts, moments, when each expert entered), the head,
    /// merged class statistics, and per-task records for the plots.</summary>
    private sealed class SamoeModel : nn.Module
    {
        public readonly ExpertPromptPool Pool;
        public readonly Linear Head;
        /// <summary>Diagonal Gaussians of each class's prompted features, merged exactly when a class comes back.</summary>
        public readonly GaussianClassStatistics Statistics;
        [TorchSharp.Utils.ComponentName(Name = "usage")]
        public readonly Tensor Usage;          // [T, M] float64: task t's training samples per top-1 expert
        [TorchSharp.Utils.ComponentName(Name = "split")]
        public readonly Tensor Split;          // [T, 2] int64: in- and out-of-distribution samples of task t

        public SamoeModel(MethodContext context, Options options) : base(nameof(SamoeModel))
        {
            var config = context.Backbone.Config;
            var blocks = context.PromptBlocks(options.Blocks, "samoe");
            torch.random.manual_seed(context.Seed);
            Pool = new ExpertPromptPool(blocks, options.MaxExperts, options.PromptLength, config.EmbedDim, config.Heads);
            Head = nn.Linear(config.EmbedDim, context.ClassCount);
            Statistics = new GaussianClassStatistics(context.ClassCount, config.EmbedDim, CovarianceKind.Diagonal);
            Usage = zeros(context.TaskCount, options.MaxExperts, dtype: float64);
            Split = zeros(context.TaskCount, 2, dtype: int64);
            register_module("pool", Pool);
            register_module("head", Head);
            register_module("statistics", Statistics);
            register_buffer("usage", Usage);
            register_buffer("split", Split);
        }
    }
}
