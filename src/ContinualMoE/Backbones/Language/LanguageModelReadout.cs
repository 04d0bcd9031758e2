using ContinualMoE.Data;
using ContinualMoE.Data.Text;
using ContinualMoE.Scenarios;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>The frozen language model of a text run and its scenario's label space (what <see cref="LanguageModelReadout"/> needs).</summary>
public sealed record LanguageTaskModel(DecoderLanguageModel Model, TextLabelSpace Labels);

/// <summary>
/// A decoder language model as the output of low-rank methods on text tasks (docs/text-tasks.md):
/// <list type="bullet">
/// <item>training: the causal-LM loss on the expected output's tokens given the prompt (instruction tuning, as O-LoRA
/// and TRACE train), mean over the batch's output tokens;</item>
/// <item>pooled representation: the mean of the final hidden states over the prompt's tokens (what the model has read
/// before answering; SETA's gate uses it);</item>
/// <item>classification: class logits = log p(label text's ids | prompt), summed over the label's tokens (EOS
/// included), for every seen label class; other classes get -inf;</item>
/// <item>generation tasks: greedy decoding up to the task's longest reference, scored by the task's metric (exact match
/// by default; a graded metric gives a fraction) into <see cref="Prediction.Scores"/>.</item>
/// </list>
/// Training rows are right-padded: padding follows each row's real tokens, so causal attention keeps it out of every real
/// position. Scoring and generation left-pad the prompts with an attention mask and reuse their key/value cache
/// (<see cref="LabelScorer"/>, <see cref="TextGenerator"/>).
/// </summary>
public sealed class LanguageModelReadout(DecoderLanguageModel model, TextLabelSpace labels) : AdaptedReadout
{
    public override ITransformerBackbone Backbone => model;
    public override Linear? Head => null;
    public DecoderLanguageModel Model => model;
    public TextLabelSpace Labels => labels;

    public override Tensor Pooled(Batch batch, ILinearAdapterProvider? adapters)
    {
        var (ids, promptMask) = PromptOnly(batch);
        using var output = model.Forward(ids, new LmForwardOptions { Adapters = adapters, ComputeLogits = false });
        return MeanOver(output.Hidden, promptMask);
    }

    public override StepOutput TrainingOutput(Batch batch, ILinearAdapterProvider adapters, Tensor? auxiliary)
    {
        var (loss, pooled) = LossAndPooled(batch, adapters, []);
        pooled.Dispose();
        return new StepOutput(null, auxiliary is null ? loss : loss.Plus(auxiliary));
    }

    public override (Tensor Loss, Tensor Pooled) LossAndPooled(Batch batch, ILinearAdapterProvider adapters, bool[] classMask)
    {
        var (attention, target) = Masks(batch);
        var ids = batch.Inputs;
        // Logits from the position before the earliest output token on: a long prompt costs no vocabulary projection.
        var firstTarget = target.to(ScalarType.Int64).argmax(1).min().item<long>();
        var first = Math.Max(0, firstTarget - 1);
        using var output = model.Forward(ids, new LmForwardOptions { Adapters = adapters, FirstLogitPosition = first });
        var tokens = ids.shape[1];
        // Position p predicts token p + 1.
        var logits = output.Logits!.narrow(1, 0, tokens - 1 - first);                                       // [B, L, V]
        var targets = ids.narrow(1, first + 1, tokens - 1 - first);
        var weights = target.narrow(1, first + 1, tokens - 1 - first).to(ScalarType.Float32);
        var perToken = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[2]), targets.reshape(-1), reduction: nn.Reduction.None);
        var loss = perToken.mul(weights.reshape(-1)).sum().div(weights.sum().clamp_min(Scalars.Of(1.0)));
        var promptMask = attention.logical_and(target.logical_not());
        return (loss, MeanOver(output.Hidden, promptMask));
    }

    public override Prediction Predict(Batch batch, ILinearAdapterProvider adapters, EvaluationContext context)
    {
        if (context.Samples is not { Dataset: ITextDataset dataset } samples)
            throw new ContinualMoEException("text prediction needs the evaluated samples' identity (the trainer's evaluation provides it)");
        var examples = samples.Indices.Select(dataset.GetText).ToArray();
        var rows = examples.Length;
        var classes = labels.ClassNames.Count;
        var scores = new float[rows * classes];
        Array.Fill(scores, float.NegativeInfinity);
        var prompts = examples.Select(e => (IReadOnlyList<long>)Array.ConvertAll(e.Prompt, i => (long)i)).ToArray();
        var scored = Enumerable.Range(0, classes).Where(c => context.SeenClassMask[c] && labels.LabelIds[c] is not null).ToArray();
        if (scored.Length > 0)
        {
            var options = scored.Select(c => (IReadOnlyList<long>)Array.ConvertAll(labels.LabelIds[c]!, i => (long)i)).ToArray();
            var optionScores = LabelScorer.Score(model, prompts, options, new LmForwardOptions { Adapters = adapters });
            for (var r = 0; r < rows; r++)
                for (var k = 0; k < scored.Length; k++) scores[r * classes + scored[k]] = (float)optionScores[r, k];
        }
        var logits = tensor(scores, [rows, classes]).to(batch.Labels.device);
        if (!examples.Any(e => e.Metric is not null)) return new Prediction(logits);
        var answers = Generate(examples, prompts, adapters);
        var predicted = Losses.MaskLogits(logits, context.TrueTaskClassMask ?? context.SeenClassMask).argmax(-1).cpu().data<long>().ToArray();
        var truth = batch.Labels.cpu().data<long>().ToArray();
        var sampleScores = examples.Select((e, r) => e.Metric is { } metric
            ? (float)metric(labels.DecodeAnswer(answers[r]), e.Reference, e.Source)
            : predicted[r] == truth[r] ? 1f : 0f).ToArray();
        return new Prediction(logits) { Scores = tensor(sampleScores).to(batch.Labels.device) };
    }

    /// <summary>Greedy answers of the generation rows, all rows in one left-padded batch with a key/value cache (every row
    /// runs, so per-sample adapter weights keep their rows); each answer stops at EOS or the task's answer length.</summary>
    private List<long>[] Generate(TokenizedText[] examples, IReadOnlyList<long>[] prompts, ILinearAdapterProvider adapters)
    {
        var limit = examples.Where(e => e.Metric is not null).Max(e => e.MaxAnswerTokens);
        var settings = new GenerationSettings { MaxNewTokens = limit, StopTokenIds = labels.EndOfSequenceId is int eos ? [eos] : [] };
        var generated = TextGenerator.Generate(model, prompts, settings, new LmForwardOptions { Adapters = adapters });
        return examples.Select((e, r) => e.Metric is null ? [] : generated[r].Take(e.MaxAnswerTokens).ToList()).ToArray();
    }

    private static (Tensor Attention, Tensor Target) Masks(Batch batch) =>
        (batch.AttentionMask ?? throw new ContinualMoEException("a language-model batch needs an attention mask (text tasks' loader makes it)"),
         batch.TargetMask ?? throw new ContinualMoEException("a language-model batch needs a target mask (text tasks' loader makes it)"));

    /// <summary>The ids up to the longest prompt and the prompt positions (real tokens before the output).</summary>
    private static (Tensor Ids, Tensor PromptMask) PromptOnly(Batch batch)
    {
        var (attention, target) = Masks(batch);
        var promptMask = attention.logical_and(target.logical_not());
        var longest = promptMask.sum(1).max().item<long>();
        return (batch.Inputs.narrow(1, 0, longest), promptMask.narrow(1, 0, longest));
    }

    /// <summary>Mean of hidden [B, T, D] over the true positions of mask [B, T'] (T' may exceed T only with false tail).</summary>
    private static Tensor MeanOver(Tensor hidden, Tensor mask)
    {
        var m = mask.narrow(1, 0, hidden.shape[1]).to(ScalarType.Float32).unsqueeze(-1);
        return hidden.to(ScalarType.Float32).mul(m).sum(1).div(m.sum(1).clamp_min(Scalars.Of(1.0)));
    }
}
