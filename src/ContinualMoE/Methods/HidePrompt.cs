using ContinualMoE.Backbones;
using ContinualMoE.Prompts;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Methods;

/// <summary>Settings of the HiDe-Prompt pipeline (NoRGa's add the gate, <see cref="NorgaOptions"/>).
/// Null WTP epochs and rate fall back to the run's <c>epochs</c> and <c>learning_rate</c>; the TII rates fall back to the
/// official formulas (base rate x batch / 256), never to the run's rate. The official values are in the presets under
/// configs/ and in docs/methods/hide-norga.md.</summary>
public record HideOptions
{
    // Within-task prediction (WTP): task prompts and the classifier head.
    /// <summary>Prompted blocks (official: 0-4).</summary>
    public int[] Blocks { get; init; } = [0, 1, 2, 3, 4];
    /// <summary>Prefix length (official: 5 for CIFAR-100, 20 for ImageNet-R).</summary>
    public int Length { get; init; } = 5;
    public double PromptMomentum { get; init; } = 0.01;
    /// <summary>Weight of the contrastive regulariser (official: 0.1 CIFAR-100, 0.5 ImageNet-R).</summary>
    public double Reg { get; init; } = 0.1;
    public double ContrastiveTemperature { get; init; } = 0.8;
    public int? Epochs { get; init; }
    /// <summary>The prompts' learning rate (official: 0.03 x batch / 256); the head trains at <see cref="HeadRateMultiplier"/> x it.</summary>
    public double? LearningRate { get; init; }
    public double HeadRateMultiplier { get; init; } = 0.1;
    /// <summary>constant, step or cosine (official: step x0.1 at epoch 30 for CIFAR-100, cosine for ImageNet-R).</summary>
    public string Schedule { get; init; } = "constant";
    public int[] StepMilestones { get; init; } = [30];
    /// <summary>When the step and cosine schedules move: "project" (default; PyTorch-style, the rate of epoch e is the
    /// schedule at e, cosine to 0) or "timm" (the official engines: timm's StepLRScheduler / CosineLRScheduler from
    /// create_scheduler, stepped with <c>lr_scheduler.step(epoch)</c> after each epoch, so one epoch late, and the
    /// cosine floored at <see cref="MinLearningRate"/>; the paper presets set it).</summary>
    public string ScheduleTiming { get; init; } = "project";
    /// <summary>The timm cosine's floor (the official configs' <c>--min-lr</c> 1e-5); used with schedule_timing=timm.</summary>
    public double MinLearningRate { get; init; } = 1e-5;
    public double ClipGradNorm { get; init; } = 1.0;
    /// <summary>per-sample (each sample its own key and value prefix; default) or official-reshape (the official
    /// EPrompt's batch reshape, see <see cref="ContinualMoE.Prompts.PromptBatchLayout.OfficialReshape"/>; the paper presets set it).</summary>
    public string PromptBatchLayout { get; init; } = "per-sample";
    /// <summary>Initialisation of the classifier head and of the TII network's linear layers: torch (nn.Linear's
    /// default; default) or timm (truncated normal, std 0.02, zero bias: what the official create_model gives them, as
    /// timm's init_weights_vit_timm runs over the whole model and the pretrained checkpoint does not cover them).</summary>
    public string LinearInit { get; init; } = "torch";

    // Task-identity inference (TII).
    public int? TiiEpochs { get; init; }
    /// <summary>Null: the official 5e-4 x batch / 256 (tii_trainer.py scales <c>--lr 0.0005</c>); Adam, constant.</summary>
    public double? TiiLearningRate { get; init; }
    /// <summary>The official code trains the TII network on augmented images (its training loader); false trains on the
    /// un-augmented frozen features, computed once per image and cached.</summary>
    public bool TiiAugment { get; init; } = true;
    public int TiiHiddenMultiplier { get; init; } = 2;
    public bool TiiAlignment { get; init; } = true;
    public int TiiAlignmentEpochs { get; init; } = 30;
    /// <summary>Null: the official 0.005 x batch / 256 (tii_trainer.py scales <c>--ca_lr 0.005</c>: 0.0025 at batch 128).</summary>
    public double? TiiAlignmentLearningRate { get; init; }
    /// <summary>Gaussian samples per class and epoch (official: the batch size, 128); null means the run's batch size.</summary>
    public int? TiiAlignmentSamplesPerClass { get; init; }

    // Task-adaptive prediction (TAP).
    /// <summary>False skips TAP: a run with method.tap=false reports the accuracy matrix before TAP.</summary>
    public bool Tap { get; init; } = true;
    public int TapEpochs { get; init; } = 30;
    /// <summary>Official CIFAR-100: 0.005 for HiDe-Prompt, 0.05 for NoRGa.</summary>
    public double TapLearningRate { get; init; } = 0.005;
    /// <summary>Samples per class and epoch, and TAP's batch size (official: 5 x batch size); null means 5 x the run's batch size.</summary>
    public int? TapSamplesPerClass { get; init; }
    /// <summary>SGD weight decay of both alignments. Official: 0. The configs declare <c>--weight-decay</c> (0.0) and
    /// <c>--weight_decay</c> (5e-4) with the same destination; argparse keeps the first default, and the optimiser's
    /// parameter group passes <c>args.weight_decay</c>, which overrides the SGD constructor's 5e-4.</summary>
    public double AlignmentWeightDecay { get; init; }
    /// <summary>Optimiser steps per epoch of both alignments. "earlier-classes" (official: the TAP and TII alignment loops
    /// of hide_promtp_wtp_and_tap_engine.py and hide_tii_engine.py run <c>crct_num</c> steps, the number of classes of the
    /// earlier tasks, so most of each epoch's samples go unused); "all-batches" trains on every batch drawn.</summary>
    public string AlignmentSteps { get; init; } = "earlier-classes";
}

/// <summary>
/// HiDe-Prompt (Wang et al., "Hierarchical Decomposition of Prompt-Based Continual Learning: Rethinking Obscured
/// Sub-optimality", NeurIPS 2023), as the official code runs it:
///   TII   a residual MLP + head on frozen un-prompted features, trained per task with masked cross-entropy (Adam), then
///         from the second task re-aligned (SGD, cosine) on Gaussian samples of all seen classes' backbone features;
///   WTP   one prefix prompt per task (copied from the previous task's), trained with the true task's prompt mixed with
///         the mean of the earlier prompts (prompt momentum), masked cross-entropy + reg x a contrastive regulariser
///         against the stored class means;
///   TAP   after the task, the new classes' prompted-feature Gaussians are stored and, from the second task, the head is
///         retrained on samples of all seen classes;
///   test  TII picks a class, its task's prompt conditions the backbone, the head classifies over the seen classes.
/// NoRGa (<see cref="Norga"/>) is this pipeline with the non-linear residual gate.
/// </summary>
// bf16 within 0.3 points of fp32 (docs/methods/precision.md, session 14): embedded default -0.1, split Fashion-MNIST -0.3.
[ContinualMethod("hide-prompt", "HiDe-Prompt: task prompts with task-identity inference and task-adaptive prediction (NeurIPS 2023)", Bf16Safe = true)]
public class HidePrompt : LearnerBase
{
    private readonly HideOptions options;
    private readonly HideModel model;
    private readonly string name;
    private IReadOnlyList<int> oldClasses = [];

    public HidePrompt(MethodContext context) : this(context, context.Settings.Bind(new HideOptions(), "hide-prompt"), "hide-prompt") { }

    /// <summary>The official TII rates are given for batch 256 and scaled linearly (tii_trainer.py).</summary>
    public const double OfficialTiiRate = 5e-4, OfficialTiiAlignmentRate = 0.005;

    /// <param name="gate">Builds the gate on the prefix logits of the given number of prompted blocks (NoRGa), or null.</param>
    protected HidePrompt(MethodContext context, HideOptions options, string name, Func<int, NonLinearResidualGate>? gate = null)
        : this(context, options, name, new HideModel(context, options, gate)) { }

    private HidePrompt(MethodContext context, HideOptions options, string name, HideModel model) : base(context, model)
    {
        this.options = options;
        this.model = model;
        this.name = name;
        if (options.Length < 1) throw new ContinualMoEException($"{name}: length must be at least 1");
        if (options.PromptMomentum is < 0 or >= 1) throw new ContinualMoEException($"{name}: prompt_momentum must be in [0, 1)");
        if (options.AlignmentSteps is not ("earlier-classes" or "all-batches"))
            throw new ContinualMoEException($"{name}: alignment_steps must be earlier-classes or all-batches, got '{options.AlignmentSteps}'");
        _ = TimmTiming;
        if (options.MinLearningRate < 0) throw new ContinualMoEException($"{name}: min_learning_rate must not be negative");
    }

    public override string Name => name;
    public HideOptions Options => options;
    public TaskPrefixPrompts Prompts => model.Prompts;
    public Linear Head => model.Head;
    public TaskIdentityInference TaskIdentity => model.Tii;
    public GaussianClassStatistics PromptedStatistics => model.Statistics;

    private int Epochs => options.Epochs ?? Context.Training.Epochs;
    private double PromptRate => options.LearningRate ?? Context.Training.LearningRate;
    private int BatchSize => Context.Training.BatchSize;
    private double TiiRate => options.TiiLearningRate ?? OfficialTiiRate * BatchSize / 256.0;
    private double TiiAlignmentRate => options.TiiAlignmentLearningRate ?? OfficialTiiAlignmentRate * BatchSize / 256.0;

    private ScheduleKind Schedule => options.Schedule.Trim().ToLowerInvariant() switch
    {
        "constant" => ScheduleKind.Constant,
        "step" => ScheduleKind.Step,
        "cosine" => ScheduleKind.Cosine,
        _ => throw new ContinualMoEException($"{name}: schedule must be constant, step or cosine, got '{options.Schedule}'"),
    };

    private bool TimmTiming => options.ScheduleTiming.Trim().ToLowerInvariant() switch
    {
        "project" => false,
        "timm" => true,
        _ => throw new ContinualMoEException($"{name}: schedule_timing must be project or timm, got '{options.ScheduleTiming}'"),
    };

    /// <summary>The WTP optimiser: Adam, the prompt group at the prompt rate, the head at a tenth (official
    /// --larger_prompt_lr); the schedule as <see cref="HideOptions.Schedule"/> and <see cref="HideOptions.ScheduleTiming"/>.</summary>
    public OptimizerSettings WtpOptimizer() => new()
    {
        Kind = OptimizerKind.Adam, LearningRate = PromptRate, Schedule = Schedule,
        StepMilestones = options.StepMilestones, ClipGradNorm = options.ClipGradNorm,
        EpochLag = TimmTiming ? 1 : 0, MinRate = TimmTiming && Schedule == ScheduleKind.Cosine ? options.MinLearningRate : 0,
    };

    public override void BeginTask(TaskContext task)
    {
        model.Tii.AssignTask(task.TaskClasses, task.TaskIndex);
        oldClasses = Enumerable.Range(0, task.ClassCount).Where(c => task.SeenClassMask[c] && !task.TaskClassMask[c] && model.Statistics.IsKnown(c)).ToList();
        // NoRGa: (tau, alpha) learn during the first task only.
        if (model.Prompts.Gate is { } gate) gate.Trainable = task.IsFirstTask;
        model.Prompts.CopyFromPrevious(task.TaskIndex);
    }

    public override IReadOnlyList<TrainingPhase> TrainingPhases(TaskContext task)
    {
        var promptGroup = new List<Parameter> { model.Prompts.Prompts };
        if (model.Prompts.Gate is { Trainable: true } gate) promptGroup.Add(gate.Scales);
        return
        [
            new TrainingPhase
            {
                Name = "tii",
                Epochs = options.TiiEpochs ?? Epochs,
                Parameters = [new ParameterGroup("tii", model.Tii.NetworkParameters)],
                Optimizer = new OptimizerSettings { Kind = OptimizerKind.Adam, LearningRate = TiiRate, ClipGradNorm = options.ClipGradNorm },
                Augment = options.TiiAugment,
                Step = batch => new StepOutput(model.Tii.Logits(TiiFeatures(batch, task))),
            },
            new TrainingPhase
            {
                Name = "wtp",
                Epochs = Epochs,
                Parameters =
                [
                    new ParameterGroup("prompts", promptGroup),
                    new ParameterGroup("head", TrainableParameters(model.Head), options.HeadRateMultiplier),
                ],
                Optimizer = WtpOptimizer(),
                OnEpochStart = _ => model.Prompts.UseTask(task.TaskIndex, options.PromptMomentum),
                Step = batch => WtpStep(batch),
            },
        ];
    }

    /// <summary>Frozen un-prompted features; cached per image when the TII phase trains without augmentation (then
    /// <see cref="EndTask"/>'s un-augmented pass reads them too: one frozen pass per training image per task).</summary>
    private Tensor TiiFeatures(Data.Batch batch, TaskContext task) => options.TiiAugment
        ? FrozenFeatures(batch.Images)
        : FrozenFeatures(batch.Images, new SampleIdentity(task.Train, batch.Indices));

    private StepOutput WtpStep(Data.Batch batch)
    {
        var features = PromptedFeatures(batch.Images);
        var logits = model.Head.forward(features);
        Tensor? auxiliary = null;
        if (options.Reg > 0)
        {
            using var means = oldClasses.Count > 0
                ? model.Statistics.Means.index_select(0, tensor(oldClasses.Select(c => (long)c).ToArray(), device: features.device))
                : null;
            auxiliary = ContrastiveRegulariser(features, means, options.ContrastiveTemperature).mul(Scalars.Of(options.Reg));
        }
        return new StepOutput(logits, auxiliary);
    }

    /// <summary>
    /// The official code's regulariser: M = [stored old-class means; batch features] (no normalisation),
    /// S = M M^T / temperature, cross-entropy of every row of S against its own index (each row most similar to itself),
    /// averaged over all rows, mean rows included (they carry gradient through their columns). Without stored means (first
    /// task) M is the batch features alone.
    /// </summary>
    public static Tensor ContrastiveRegulariser(Tensor features, Tensor? oldMeans, double temperature)
    {
        using var scope = NewDisposeScope();
        var m = oldMeans is null ? features : cat([oldMeans.to(features.dtype), features], 0);
        var similarities = m.matmul(m.t()).div(Scalars.Of(temperature));
        var targets = Scalars.Arange(m.shape[0], dtype: int64, device: m.device);
        return nn.functional.cross_entropy(similarities, targets).MoveToOuterDisposeScope();
    }

    private Tensor PromptedFeatures(Tensor images)
    {
        using var output = Backbone.ForwardFeatures(images, new VitForwardOptions { Prefixes = model.Prompts });
        return output.Cls.clone();
    }

    public override void EndTask(TaskContext task)
    {
        model.Prompts.CommitMomentum(task.TaskIndex, options.PromptMomentum);
        model.Prompts.UseTask(task.TaskIndex);
        // One pass over the un-augmented training data: backbone features (TII) and prompted features (TAP) per class.
        using var frozen = new PerClassFeatures();
        using var prompted = new PerClassFeatures();
        using (no_grad())
        {
            foreach (var batch in task.Data.Loader(task.Train, augment: false, shuffle: false).Epoch(0))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    // Without TII augmentation the TII phase already ran the frozen backbone on exactly these
                    // un-augmented images: one frozen pass per training image per task (docs/frozen-passes.md).
                    var f = TiiFeatures(batch, task);
                    var p = PromptedFeatures(batch.Images);
                    var labels = batch.Labels.cpu().data<long>().ToArray();
                    frozen.Add(f, labels);
                    prompted.Add(p, labels);
                }
            }
        }
        frozen.MergeInto(model.Tii.Statistics);   // a class seen again adds to its statistics
        prompted.MergeInto(model.Statistics);
        ForgetFrozenFeatures(task.Train);

        if (task.IsFirstTask) return;
        var seen = task.SeenClasses.ToList();
        if (options.TiiAlignment)
        {
            var perClass = options.TiiAlignmentSamplesPerClass ?? BatchSize;
            ClassifierAlignment.Run(model.Tii.Logits, [new ParameterGroup("tii", model.Tii.NetworkParameters)],
                model.Tii.Statistics, seen.Where(model.Tii.Statistics.IsKnown).ToList(), task.SeenClassMask,
                new AlignmentSettings(options.TiiAlignmentEpochs, perClass, BatchSize, AlignmentOptimizer(TiiAlignmentRate))
                { IterationsPerEpoch = AlignmentStepsPerEpoch(task) },
                task.Seed + 1);
        }
        if (options.Tap) RunTap(task);
    }

    /// <summary>Task-adaptive prediction: retrains the classifier head only, on Gaussian samples of every seen class's
    /// prompted features (prompts and the NoRGa gate stay fixed).</summary>
    public void RunTap(TaskContext task)
    {
        var perClass = options.TapSamplesPerClass ?? 5 * BatchSize;
        var seen = task.SeenClasses.Where(model.Statistics.IsKnown).ToList();
        ClassifierAlignment.Run(model.Head.forward, [new ParameterGroup("head", TrainableParameters(model.Head))],
            model.Statistics, seen, task.SeenClassMask,
            new AlignmentSettings(options.TapEpochs, perClass, perClass, AlignmentOptimizer(options.TapLearningRate))
            { IterationsPerEpoch = AlignmentStepsPerEpoch(task) },
            task.Seed + 2);
    }

    private int? AlignmentStepsPerEpoch(TaskContext task) =>
        options.AlignmentSteps == "earlier-classes" ? task.EarlierClassCount : null;

    /// <summary>Both alignments: SGD with momentum 0.9 and PyTorch's CosineAnnealingLR(T_max = epochs), stepped after
    /// each epoch (official train_task_adaptive_prediction in hide_promtp_wtp_and_tap_engine.py and hide_tii_engine.py;
    /// not timm's scheduler).</summary>
    public OptimizerSettings AlignmentOptimizer(double rate) => ClassifierAlignment.SgdCosine(rate, options.AlignmentWeightDecay);

    public override Prediction Predict(Tensor images, EvaluationContext context)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor tasks;
        if (context.TrueTask is int trueTask)
        {
            tasks = full(images.shape[0], Scalars.Integer(trueTask), dtype: int64, device: images.device);
        }
        else
        {
            var frozen = FrozenFeatures(images, context);
            tasks = model.Tii.Infer(frozen, context.SeenClassMask).Tasks;
        }
        // Guard: a class without an assigned task cannot be predicted (masked), but keep indices valid.
        tasks = tasks.clamp(Scalars.Integer(0), Scalars.Integer(model.Prompts.Tasks - 1));
        model.Prompts.UsePerSample(tasks);
        var logits = model.Head.forward(PromptedFeatures(images));
        return new Prediction(logits.MoveToOuterDisposeScope(), tasks.MoveToOuterDisposeScope());
    }

    /// <summary>Per test image: one frozen pass (TII) and one prompted pass. Statistics are state, not parameters.</summary>
    public override MethodCost Cost(int tasksTrained)
    {
        var trainable = model.Prompts.Prompts.numel() + (model.Prompts.Gate?.Scales.numel() ?? 0)
            + model.Head.parameters().Sum(p => p.numel()) + model.Tii.NetworkParameters.Sum(p => p.numel());
        var bytes = model.state_dict().Values.Sum(t => t.numel() * t.element_size());
        return new MethodCost(trainable, model.Prompts.ParametersPerTask, bytes, 2);
    }

    private static ContinualMoE.Prompts.PromptBatchLayout ParseLayout(string name) => name.Trim().ToLowerInvariant() switch
    {
        "per-sample" => ContinualMoE.Prompts.PromptBatchLayout.PerSample,
        "official-reshape" => ContinualMoE.Prompts.PromptBatchLayout.OfficialReshape,
        _ => throw new ContinualMoEException($"hide-prompt: prompt_batch_layout must be per-sample or official-reshape, got '{name}'"),
    };

    private static bool ParseTimmInit(string name) => name.Trim().ToLowerInvariant() switch
    {
        "torch" => false,
        "timm" => true,
        _ => throw new ContinualMoEException($"hide-prompt: linear_init must be torch or timm, got '{name}'"),
    };

    /// <summary>Everything the pipeline learns or keeps: task prompts (+ gate), head, prompted-feature statistics, TII network and its statistics.</summary>
    private sealed class HideModel : nn.Module
    {
        public readonly TaskPrefixPrompts Prompts;
        public readonly Linear Head;
        public readonly GaussianClassStatistics Statistics;
        public readonly TaskIdentityInference Tii;

        public HideModel(MethodContext context, HideOptions options, Func<int, NonLinearResidualGate>? newGate) : base(nameof(HideModel))
        {
            var config = context.Backbone.Config;
            var blocks = context.PromptBlocks(options.Blocks, "hide-prompt");
            torch.random.manual_seed(context.Seed);
            var gate = newGate?.Invoke(blocks.Count);
            Prompts = new TaskPrefixPrompts(blocks, context.TaskCount, options.Length, config.Heads, config.HeadDim, gate,
                ParseLayout(options.PromptBatchLayout));
            Head = nn.Linear(config.EmbedDim, context.ClassCount);
            Statistics = new GaussianClassStatistics(context.ClassCount, config.EmbedDim, CovarianceKind.Full);
            Tii = new TaskIdentityInference(config.EmbedDim, context.ClassCount, options.TiiHiddenMultiplier);
            if (ParseTimmInit(options.LinearInit))
            {
                TaskIdentityInference.TimmInit(Head);
                Tii.UseTimmInit();
            }
            register_module("prompts", Prompts);
            register_module("head", Head);
            register_module("statistics", Statistics);
            register_module("tii", Tii);
        }
    }
}
