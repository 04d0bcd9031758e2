using ContinualMoE.Data;
using ContinualMoE.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones;

/// <summary>
/// The backbone-neutral forward of methods that adapt a frozen backbone's linear layers (LoRA baselines, SETA): given a
/// batch of any modality and an adapter provider, the pooled representation (SETA's gate and class statistics), the
/// training output, a loss for Fisher estimates, and the evaluation prediction. The methods see only this, so they run
/// unchanged on a ViT (<see cref="ImageClassifierReadout"/>: a linear head on the class token) and on a decoder language
/// model (<see cref="Language.LanguageModelReadout"/>: the causal-LM loss on the output tokens and label scoring;
/// docs/text-tasks.md). Create with <see cref="Methods.MethodContextExtensions.NewReadout"/>.
/// </summary>
public abstract class AdaptedReadout
{
    /// <summary>The frozen backbone whose linear layers the adapters change (sites, widths).</summary>
    public abstract ITransformerBackbone Backbone { get; }

    /// <summary>Width of <see cref="Pooled"/>.</summary>
    public long Width => Backbone.Width;

    /// <summary>The trainable output layer over the scenario's classes (images); null when the backbone's own output
    /// scores the classes (language models), so there is no head to train or to re-align.</summary>
    public abstract Linear? Head { get; }

    /// <summary>Trainable parameters of <see cref="Head"/> (empty without a head).</summary>
    public IReadOnlyList<Parameter> HeadParameters => Head is null ? [] : Head.parameters().Where(p => p.requires_grad).ToList();

    /// <summary>The pooled representation [B, Width] with <paramref name="adapters"/>; null adapters: the frozen backbone.</summary>
    public abstract Tensor Pooled(Batch batch, ILinearAdapterProvider? adapters);

    /// <summary>What one training step returns to the trainer: class logits for its masked cross-entropy (images) or the
    /// whole loss (text), with <paramref name="auxiliary"/> added.</summary>
    public abstract StepOutput TrainingOutput(Batch batch, ILinearAdapterProvider adapters, Tensor? auxiliary);

    /// <summary>The task loss of a batch (the trainer's loss without auxiliary terms) and the adapted pooled
    /// representation from the same pass: Fisher estimates and class statistics at the end of a task.</summary>
    public abstract (Tensor Loss, Tensor Pooled) LossAndPooled(Batch batch, ILinearAdapterProvider adapters, bool[] classMask);

    /// <summary>Class logits [B, C] (and per-sample correctness for samples scored on generated answers).</summary>
    public abstract Prediction Predict(Batch batch, ILinearAdapterProvider adapters, EvaluationContext context);
}

/// <summary>A ViT's pre-logits class token and a linear head over the scenario's classes.</summary>
public sealed class ImageClassifierReadout(VisionTransformer backbone, Linear head) : AdaptedReadout
{
    public override ITransformerBackbone Backbone => backbone;
    public override Linear Head => head;

    public override Tensor Pooled(Batch batch, ILinearAdapterProvider? adapters)
    {
        using var output = adapters is null
            ? backbone.ForwardFeatures(batch.Inputs)
            : backbone.ForwardFeatures(batch.Inputs, new VitForwardOptions { Adapters = adapters });
        return output.Cls.clone();
    }

    public override StepOutput TrainingOutput(Batch batch, ILinearAdapterProvider adapters, Tensor? auxiliary) =>
        new(head.forward(Pooled(batch, adapters)), auxiliary);

    public override (Tensor Loss, Tensor Pooled) LossAndPooled(Batch batch, ILinearAdapterProvider adapters, bool[] classMask)
    {
        var pooled = Pooled(batch, adapters);
        return (Losses.MaskedCrossEntropy(head.forward(pooled), batch.Labels, classMask), pooled);
    }

    public override Prediction Predict(Batch batch, ILinearAdapterProvider adapters, EvaluationContext context) =>
        new(head.forward(Pooled(batch, adapters)));
}
