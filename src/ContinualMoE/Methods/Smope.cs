using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// SMoPE (Le et al., "One-Prompt Strikes Back: Sparse Mixture of Experts for Prompt-based Continual Learning",
/// ICLR 2026): one shared prefix prompt split into prompt experts, sparse top-K selection per input by aggregated
/// prompt-attention scores, adaptive noise that protects old tasks' experts, a router loss and a prototype loss on the
/// prefix keys, and classifier alignment on Gaussian pseudo-features. One forward pass at inference, no task identity,
/// a parameter count that does not grow with tasks.
///
/// Per task (the paper's algorithm; defaults are the official CIFAR-100 values):
///   first task only: dense warm-up for half the epochs (all experts, no router loss), then a fresh optimiser;
///   sparse epochs: loss = CE (old classes masked) + a_router L_router + a_proto L_proto (tasks after the first),
///                  with adaptive noise on tasks after the first;
///   end of task: one pass without gradients over the un-augmented training data accumulates expert frequencies and
///                the class statistics; the keys are kept as next task's prototypes; from the second task on the head
///                is re-aligned on Gaussian samples of all seen classes.
/// </summary>
[ContinualMethod("smope", "SMoPE: one shared prompt as a sparse mixture of prompt experts (ICLR 2026)")]
public sealed class Smope : LearnerBase, IExpertUsage
{
    public sealed record Options
    {
        /// <summary>Prompted blocks (official: 0-5); blocks beyond the backbone's depth are dropped.</summary>
        public int[] Blocks { get; init; } = [0, 1, 2, 3, 4, 5];
        /// <summary>Experts per block and head N_p (official prompt length 50 = 25 key/value pairs).</summary>
        public int Experts { get; init; } = 25;
        public int TopK { get; init; } = 5;
        /// <summary>eps: 0.4 for CIFAR-100 and CUB-200; 0.7 / 0.5 / 0.3 for ImageNet-R with 5 / 10 / 20 tasks.</summary>
        public double NoiseEpsilon { get; init; } = 0.4;
        public double RouterLossWeight { get; init; } = 1e-5;
        public double PrototypeLossWeight { get; init; } = 1e-5;
        public int? Epochs { get; init; }
        /// <summary>The head's learning rate (official CIFAR-100: 0.005); the prompt's is <see cref="PromptRateMultiplier"/> times it.</summary>
        public double? LearningRate { get; init; }
        public double PromptRateMultiplier { get; init; } = 5.0;
        // Switches for the paper's ablation.
        public bool Sparse { get; init; } = true;
        public bool AggregatedLogits { get; init; } = true;
        public bool AdaptiveNoise { get; init; } = true;
        public bool RouterLoss { get; init; } = true;
        public bool PrototypeLoss { get; init; } = true;
        public bool DenseWarmup { get; init; } = true;
        public bool ClassifierAlignment { get; init; } = true;
        public int AlignmentEpochs { get; init; } = 50;
        public double AlignmentLearningRate { get; init; } = 0.01;
        public int AlignmentSamplesPerClass { get; init; } = 256;
        /// <summary>Official-code variants (see docs/methods/smope.md).</summary>
        public bool FrequencyMeanOverUsedExperts { get; init; }
        public bool ExcludeUnusedExpertsAtTest { get; init; }
    }

    private readonly Options options;
    private readonly SmopeModel model;

    public Smope(MethodContext context) : this(context, context.Settings.Bind(new Options(), "smope")) { }

    private Smope(MethodContext context, Options options) : this(context, options, new SmopeModel(context, options)) { }

    private Smope(MethodContext context, Options options, SmopeModel model) : base(context, model)
    {
        this.options = options;
        this.model = model;
        if (options.TopK < 1 || options.TopK > options.Experts)
            throw new ContinualMoEException($"smope: top_k must be between 1 and experts ({options.Experts}), got {options.TopK}");
    }

    public override string Name => "smope";
    public SparsePromptExperts Experts => model.Experts;
    public IReadOnlyList<int> ExpertBlocks => model.Experts.Blocks;
    public Tensor ExpertFrequencies => model.Experts.Frequencies;

    private int Epochs => options.Epochs ?? Context.Training.Epochs;
    private double HeadRate => options.LearningRate ?? Context.Training.LearningRate;

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task)
    {
        var phases = new List<TrainingPhase>();
        if (task.IsFirstTask && options.DenseWarmup && options.Sparse)
            phases.Add(Phase(task, "dense-warmup", Math.Max(1, Epochs / 2), dense: true));
        phases.Add(Phase(task, options.Sparse ? "sparse" : "dense", Epochs, dense: !options.Sparse));
        return phases;
    }

    private TrainingPhase Phase(TaskContext task, string name, int epochs, bool dense) => new()
    {
        Name = name,
        Epochs = epochs,
        Parameters =
        [
            new ParameterGroup("prompt experts", [model.Experts.Keys, model.Experts.Values], options.PromptRateMultiplier),
            new ParameterGroup("head", TrainableParameters(model.Head)),
        ],
        // AdamW without weight decay and a cosine schedule, as the official code trains.
        Optimizer = new OptimizerSettings { Kind = OptimizerKind.AdamW, LearningRate = HeadRate, WeightDecay = 0, Schedule = ScheduleKind.Cosine },
        OnEpochStart = _ => model.Experts.Routing = TrainingRouting(task, dense),
        Step = batch => TrainStep(batch, task, dense),
    };

    private ExpertRouting TrainingRouting(TaskContext task, bool dense) => new()
    {
        Sparse = !dense,
        TopK = options.TopK,
        AggregatedLogits = options.AggregatedLogits,
        NoiseEpsilon = options.NoiseEpsilon,
        NoiseActive = options.AdaptiveNoise && !task.IsFirstTask,
        FrequencyMeanOverUsedExperts = options.FrequencyMeanOverUsedExperts,
    };

    private ExpertRouting InferenceRouting() => new()
    {
        Sparse = options.Sparse,
        TopK = options.TopK,
        AggregatedLogits = options.AggregatedLogits,
        FrequencyMeanOverUsedExperts = options.FrequencyMeanOverUsedExperts,
        ExcludeUnusedExperts = options.ExcludeUnusedExpertsAtTest,
    };

    private StepOutput TrainStep(Data.Batch batch, TaskContext task, bool dense)
    {
        var experts = model.Experts;
        experts.ClearRecords();
        var useRouter = options.RouterLoss && !dense && options.RouterLossWeight > 0;
        experts.Record = useRouter;
        var logits = model.Head.forward(PromptedFeatures(batch.Images));
        experts.Record = false;
        Tensor? auxiliary = null;
        if (useRouter) auxiliary = experts.RouterLoss(options.NoiseEpsilon).mul(Scalars.Of(options.RouterLossWeight));
        if (options.PrototypeLoss && !task.IsFirstTask && !dense && options.PrototypeLossWeight > 0)
        {
            var proto = experts.PrototypeLoss().mul(Scalars.Of(options.PrototypeLossWeight));
            auxiliary = auxiliary is null ? proto : auxiliary + proto;
        }
        return new StepOutput(logits, auxiliary);
    }

    private Tensor PromptedFeatures(Tensor images)
    {
        using var output = Backbone.ForwardFeatures(images, new Backbones.VitForwardOptions { Prefixes = model.Experts });
        return output.Cls.clone();
    }

    public override void EndTask(TaskContext task)
    {
        var experts = model.Experts;
        experts.ClearRecords();
        experts.Routing = InferenceRouting() with { ExcludeUnusedExperts = false };
        // One pass without gradients over the un-augmented training data: expert frequencies and class statistics.
        var features = new Dictionary<int, List<Tensor>>();
        using (var noGrad = no_grad())
        {
            foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
            {
                using (batch)
                {
                    experts.Record = true;
                    var f = PromptedFeatures(batch.Images);
                    experts.Record = false;
                    experts.AccumulateFrequencies();
                    var labels = batch.Labels.data<long>().ToArray();
                    for (var i = 0; i < labels.Length; i++)
                    {
                        if (!features.TryGetValue((int)labels[i], out var list)) features[(int)labels[i]] = list = [];
                        list.Add(f[i].clone());
                    }
                    f.Dispose();
                }
            }
        }
        foreach (var (label, list) in features)
        {
            using var stacked = stack(list);
            model.Statistics.Merge(label, stacked);   // a class seen again (overlapping tasks) adds to its statistics
            foreach (var t in list) t.Dispose();
        }
        experts.SnapshotKeys();
        if (options.ClassifierAlignment && !task.IsFirstTask)
        {
            var seen = task.SeenClasses.Where(model.Statistics.IsKnown).ToList();
            ClassifierAlignment.Run(model.Head.forward, [new ParameterGroup("head", TrainableParameters(model.Head))],
                model.Statistics, seen, task.SeenClassMask,
                new AlignmentSettings(options.AlignmentEpochs, options.AlignmentSamplesPerClass, Context.Training.BatchSize,
                    new OptimizerSettings { Kind = OptimizerKind.Sgd, LearningRate = options.AlignmentLearningRate, Momentum = 0.9, Schedule = ScheduleKind.Cosine }),
                task.Seed);
        }
    }

    public override Prediction Predict(Tensor images, EvaluationContext context)
    {
        model.Experts.Routing = InferenceRouting();
        model.Experts.Record = false;
        return new Prediction(model.Head.forward(PromptedFeatures(images)));
    }

    /// <summary>The class statistics are method state but not learned parameters; they are not counted as trainable.</summary>
    public override MethodCost Cost(int tasksTrained)
    {
        var trainable = model.Experts.Keys.numel() + model.Experts.Values.numel() + model.Head.parameters().Sum(p => p.numel());
        var bytes = model.state_dict().Values.Sum(t => t.numel() * t.element_size());
        return new MethodCost(trainable, 0, bytes, 1);
    }

    /// <summary>Everything SMoPE learns or keeps: experts (with frequencies and previous keys), head, class statistics.</summary>
    private sealed class SmopeModel : nn.Module
    {
        public readonly SparsePromptExperts Experts;
        public readonly Linear Head;
        public readonly GaussianClassStatistics Statistics;

        public SmopeModel(MethodContext context, Options options) : base(nameof(SmopeModel))
        {
            var config = context.Backbone.Config;
            var blocks = context.PromptBlocks(options.Blocks, "smope");
            torch.random.manual_seed(context.Seed);
            Experts = new SparsePromptExperts(blocks, config.Heads, config.HeadDim, options.Experts);
            Head = nn.Linear(config.EmbedDim, context.ClassCount);
            Statistics = new GaussianClassStatistics(context.ClassCount, config.EmbedDim, CovarianceKind.Diagonal);
            register_module("experts", Experts);
            register_module("head", Head);
            register_module("statistics", Statistics);
        }
    }
}
