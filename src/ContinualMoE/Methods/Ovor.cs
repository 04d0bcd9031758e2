using ContinualMoE.Backbones;
using ContinualMoE.Data;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>
/// OVOR (Huang, Chen and Hsu, "OVOR: OnePrompt with Virtual Outlier Regularization for Rehearsal-Free
/// Class-Incremental Learning", ICLR 2024), following the official code (jpmorganchase/ovor):
///
/// OnePrompt: one prefix prompt trained continually by all tasks, no keys, no pool, no query pass (one backbone pass per
/// test image). It has DualPrompt's shape: 5 prefix key/value pairs in blocks 0-1 and 20 in blocks 2-4 (official
/// prompt_param "10 40 10": lengths with keys and values combined), uniform [0, 1) initialisation.
///
/// Virtual outlier regularisation (VOR), the last epochs of each task (official CIFAR-100: 16 regular + 4 VOR epochs):
/// prompt frozen; at the start of every VOR epoch the prompted class-token features of the task's (augmented) training
/// data are computed; outliers are synthesised NPOS-style: features L2-normalised, the `select` features with the
/// largest distance to their K-th nearest neighbour are boundary points, `sample_from` Gaussian candidates
/// (std sigma) are drawn around each, and the `per_class` x classes candidates farthest (K-th neighbour distance) from
/// the data are kept. The head then trains on the features (cross-entropy) plus
/// lambda [Huber(relu(E_id - t_id)) + Huber(relu(t_ood - E_ood))] with energy E = -logsumexp over the task's logits.
/// </summary>
// bf16 within 0.3 points of fp32 (docs/methods/precision.md, session 14): embedded default +0.1, split Fashion-MNIST -0.05.
[ContinualMethod("ovor", "OVOR: one shared prefix prompt + virtual outlier regularisation of the head (ICLR 2024)", Bf16Safe = true)]
public sealed class Ovor : LearnerBase
{
    public sealed record Options
    {
        public int[] GBlocks { get; init; } = [0, 1];
        /// <summary>Prefix key/value pairs in the G blocks (official 10 combined = 5 pairs).</summary>
        public int GLength { get; init; } = 5;
        public int[] EBlocks { get; init; } = [2, 3, 4];
        /// <summary>Prefix key/value pairs in the E blocks (official 40 combined = 20 pairs).</summary>
        public int ELength { get; init; } = 20;
        /// <summary>Virtual outlier regularisation on/off (off = plain OnePrompt).</summary>
        public bool Regularization { get; init; } = true;
        /// <summary>VOR epochs per task; null: a fifth of the epochs (official 4 of 20), at least 1.</summary>
        public int? RegularizationEpochs { get; init; }
        public int Neighbours { get; init; } = 50;
        public int SampleFrom { get; init; } = 600;
        public int Select { get; init; } = 50;
        public int PerClass { get; init; } = 40;
        /// <summary>Std of the Gaussian candidates (official common.yaml "cov: 0.1", used as a scale).</summary>
        public double Sigma { get; init; } = 0.1;
        public double Lambda { get; init; } = 0.1;
        public double ThresholdId { get; init; } = -15.0;
        public double ThresholdOod { get; init; } = -3.0;
        /// <summary>Official code centres the candidates at the origin (the boundary points it computes are unused);
        /// false (default) centres them on the boundary features, as the paper (and NPOS) describe.</summary>
        public bool CandidatesAtOrigin { get; init; }
        public int? Epochs { get; init; }
        public double? LearningRate { get; init; }
    }

    private readonly Options options;
    private readonly Model model;

    public Ovor(MethodContext context) : this(context, context.Settings.Bind(new Options(), "ovor")) { }
    private Ovor(MethodContext context, Options options) : this(context, options, new Model(context, options)) { }
    private Ovor(MethodContext context, Options options, Model model) : base(context, model)
    {
        this.options = options;
        this.model = model;
    }

    public override string Name => options.Regularization ? "ovor" : "ovor (OnePrompt, no VOR)";
    public Parameter GPrompts => model.G;
    public Parameter EPrompts => model.E;
    public Linear Head => model.Head;

    /// <summary>Outliers of the last VOR epoch [n, D] (for inspection and tests).</summary>
    public Tensor? LastOutliers { get; private set; }

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task)
    {
        var epochs = options.Epochs ?? Context.Training.Epochs;
        var vorEpochs = options.Regularization ? options.RegularizationEpochs ?? Math.Max(1, epochs / 5) : 0;
        var rate = options.LearningRate ?? Context.Training.LearningRate;
        var phases = new List<TrainingPhase>
        {
            new()
            {
                Name = "prompt",
                Epochs = Math.Max(1, epochs - vorEpochs),
                Parameters = [new ParameterGroup("prompt", [model.G, model.E]), new ParameterGroup("head", TrainableParameters(model.Head))],
                Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = rate, Schedule = ScheduleKind.Cosine },
                Step = batch => new StepOutput(model.Head.forward(Features(batch.Images))),
            },
        };
        if (vorEpochs > 0) phases.Add(RegularizationPhase(task, vorEpochs, rate));
        return phases;
    }

    private TrainingPhase RegularizationPhase(TaskContext task, int epochs, double rate)
    {
        Tensor? features = null;          // [N, D] by dataset index
        Tensor? outliers = null;
        var step = 0;
        long outlierBatch = 0;
        var taskClasses = tensor(task.TaskClasses.Select(c => (long)c).ToArray());
        return new TrainingPhase
        {
            Name = "virtual-outliers",
            Epochs = epochs,
            Parameters = [new ParameterGroup("head", TrainableParameters(model.Head))],
            Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = rate, Schedule = ScheduleKind.Cosine },
            Augment = false,   // the step reads the features computed at epoch start, not the batch images
            OnEpochStart = epoch =>
            {
                features?.Dispose();
                outliers?.Dispose();
                features = TaskFeatures(task, epoch);
                // Own generator per (task, epoch): the outliers do not depend on what drew from the global one before.
                using var generator = new Generator((ulong)Seeds.Combine(task.Seed, epoch, 2), features.device);
                outliers = VirtualOutliers.Generate(features, task.TaskClasses.Count, options, generator);
                LastOutliers?.Dispose();
                LastOutliers = outliers.clone();
                var batches = (features.shape[0] + task.Data.BatchSize - 1) / task.Data.BatchSize;
                outlierBatch = Math.Max(1, outliers.shape[0] / batches);
                step = 0;
            },
            Step = batch =>
            {
                var ids = features!.index_select(0, tensor(batch.Indices.Select(i => (long)i).ToArray(), device: features.device));
                var start = Math.Min(step++ * outlierBatch, Math.Max(0, outliers!.shape[0] - outlierBatch));
                var oods = outliers.narrow(0, start, Math.Min(outlierBatch, outliers.shape[0]));
                var logits = model.Head.forward(ids);
                var oodLogits = model.Head.forward(oods).index_select(1, taskClasses.to(oods.device));
                var regularizer = VirtualOutliers.Loss(logits.index_select(1, taskClasses.to(ids.device)), oodLogits, options);
                return new StepOutput(logits, regularizer);
            },
        };
    }

    /// <summary>Prompted class-token features of the task's augmented training data, row i = dataset index i.</summary>
    private Tensor TaskFeatures(TaskContext task, int epoch)
    {
        using var noGrad = no_grad();
        var rows = new Tensor[task.Train.Count];
        // Each epoch draws its own augmentations (the loader seeds them by epoch).
        foreach (var batch in task.Data.Loader(task.Train, augment: true, shuffle: false).Epoch(epoch))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                var f = Features(batch.Images);
                for (var i = 0; i < batch.Count; i++) rows[batch.Indices[i]] = f[i].clone().MoveToOuterDisposeScope();
            }
        }
        var stacked = stack(rows);
        foreach (var r in rows) r.Dispose();
        return stacked;
    }

    private Tensor Features(Tensor images)
    {
        var prefixes = new PrefixPrompts(Backbone.Config.Heads);
        for (var i = 0; i < model.GBlocks.Count; i++)
            prefixes.AddSplit(model.GBlocks[i], model.G[i].unsqueeze(0));
        for (var i = 0; i < model.EBlocks.Count; i++)
            prefixes.AddSplit(model.EBlocks[i], model.E[i].unsqueeze(0));
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = prefixes });
        return output.Cls.clone();
    }

    public override Prediction Predict(Tensor images, EvaluationContext context) => new(model.Head.forward(Features(images)));

    public override void Dispose()
    {
        LastOutliers?.Dispose();
        base.Dispose();
    }

    private sealed class Model : nn.Module
    {
        public readonly IReadOnlyList<int> GBlocks, EBlocks;
        [TorchSharp.Utils.ComponentName(Name = "g_prompt")]
        public readonly Parameter G;   // [G blocks, 2 L_g, D]: keys then values
        [TorchSharp.Utils.ComponentName(Name = "e_prompt")]
        public readonly Parameter E;   // [E blocks, 2 L_e, D]
        public readonly Linear Head;

        public Model(MethodContext context, Options options) : base("Ovor")
        {
            var d = context.Backbone.EmbedDim;
            GBlocks = context.PromptBlocks(options.GBlocks, "ovor", "g_blocks", emptyAllowed: true);
            EBlocks = context.PromptBlocks(options.EBlocks, "ovor", "e_blocks", emptyAllowed: true);
            torch.random.manual_seed(context.Seed);
            G = new Parameter(rand(GBlocks.Count, 2 * options.GLength, d));
            E = new Parameter(rand(EBlocks.Count, 2 * options.ELength, d));
            Head = nn.Linear(d, context.ClassCount);
            register_parameter("g_prompt", G);
            register_parameter("e_prompt", E);
            register_module("head", Head);
        }
    }

    /// <summary>NPOS-style virtual outlier synthesis and OVOR's energy regulariser.</summary>
    public static class VirtualOutliers
    {
        public static Tensor Generate(Tensor features, int classCount, Options options, Generator? generator = null)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var normed = nn.functional.normalize(features, p: 2, dim: 1);
            var n = normed.shape[0];
            var k = (int)Math.Min(options.Neighbours, n);
            var select = (int)Math.Min(options.Select, n);
            // Boundary: largest distance to the K-th nearest neighbour (the point itself counts, as in a flat index search).
            var idDistance = KthDistance(normed, normed, k);
            var boundary = idDistance.topk(select).indexes;
            var offsets = randn(select * (long)options.SampleFrom, features.shape[1], device: features.device, generator: generator).mul(Scalars.Of(options.Sigma));
            var candidates = options.CandidatesAtOrigin
                ? offsets
                : features.index_select(0, boundary).repeat_interleave(options.SampleFrom, dim: 0).Plus(offsets);
            var candidateDistance = KthDistance(nn.functional.normalize(candidates, p: 2, dim: 1), normed, k);
            var keep = (int)Math.Min(candidates.shape[0], (long)options.PerClass * classCount);
            var chosen = candidateDistance.topk(keep).indexes;
            return candidates.index_select(0, chosen).MoveToOuterDisposeScope();
        }

        /// <summary>Squared L2 distance of each query row to its K-th nearest row of <paramref name="data"/>, in chunks.</summary>
        public static Tensor KthDistance(Tensor queries, Tensor data, int k)
        {
            var parts = new List<Tensor>();
            for (long start = 0; start < queries.shape[0]; start += 4096)
            {
                var chunk = queries.narrow(0, start, Math.Min(4096, queries.shape[0] - start));
                var d = (chunk.pow(Scalars.Integer(2)).sum(1, keepdim: true).Plus(data.pow(Scalars.Integer(2)).sum(1).unsqueeze(0))
                         - chunk.matmul(data.t()).mul(Scalars.Integer(2))).clamp_min(Scalars.Integer(0));
                parts.Add(d.topk(k, dim: 1, largest: false).values.select(1, k - 1));
            }
            return cat(parts, 0);
        }

        /// <summary>lambda [Huber(relu(E_id - t_id)) + Huber(relu(t_ood - E_ood))], E = -logsumexp(logits).</summary>
        public static Tensor Loss(Tensor idLogits, Tensor oodLogits, Options options)
        {
            var idEnergy = -idLogits.logsumexp(1);
            var oodEnergy = -oodLogits.logsumexp(1);
            var idGap = nn.functional.relu(idEnergy.sub(Scalars.Of(options.ThresholdId)));
            var oodGap = nn.functional.relu(oodEnergy.negative().Plus(Scalars.Of(options.ThresholdOod)));
            return Huber(idGap).Plus(Huber(oodGap)).mul(Scalars.Of(options.Lambda));
        }

        private static Tensor Huber(Tensor x)
        {
            var a = x.abs();
            return where(a.lt(Scalars.Of(1.0)), a.pow(Scalars.Integer(2)).mul(Scalars.Of(0.5)), a.sub(Scalars.Of(0.5))).mean();
        }
    }
}
