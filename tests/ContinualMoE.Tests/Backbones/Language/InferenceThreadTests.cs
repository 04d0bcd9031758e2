using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using ContinualMoE.Experiments;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>
/// A small inference forward (no gradients) runs on one libtorch thread (<see cref="DecoderLanguageModel.OneThreadLimit"/>)
/// in a process that set its threads; a forward that records gradients keeps them. float32 logits of an inference forward
/// must be the same bit for bit on one thread and on two, and the process's thread count must be back afterwards.
/// </summary>
public class InferenceThreadTests
{
    /// <summary>Leaves every layer alone and notes how many threads libtorch had when each layer asked.</summary>
    private sealed class ThreadRecorder : ILinearAdapterProvider
    {
        public List<int> Threads { get; } = [];
        public Tensor? Delta(LinearSite site, Tensor input) { Threads.Add(torch.get_num_threads()); return null; }
    }

    [Theory]
    [InlineData("gpt2_tiny")]
    [InlineData("llama_tiny")]
    public void ASmallForwardWithoutGradientsRunsOnOneThreadWithTheSameLogits(string folder)
    {
        var model = LmFixtures.Load(folder);
        var ids = tensor(new long[] { 5, 9, 13, 2, 7, 3, 11, 8 }, [2, 4]);
        var threads = torch.get_num_threads();
        ComputeDevice.ConfigureThreads(2);
        try
        {
            var training = new ThreadRecorder();
            Tensor withGradients;
            using (var output = model.Forward(ids, new LmForwardOptions { Adapters = training }))
                withGradients = output.Logits!.detach().clone();

            var inference = new ThreadRecorder();
            Tensor withoutGradients;
            using (no_grad())
            using (var output = model.Forward(ids, new LmForwardOptions { Adapters = inference }))
                withoutGradients = output.Logits!.clone();

            Assert.NotEmpty(training.Threads);
            Assert.All(training.Threads, t => Assert.Equal(2, t));
            Assert.Equal(training.Threads.Count, inference.Threads.Count);
            Assert.All(inference.Threads, t => Assert.Equal(1, t));
            Assert.Equal(2, torch.get_num_threads());
            // One thread changes no float32 number: the same inference forward on both threads gives the same bits.
            Tensor onBothThreads;
            using (no_grad())
            using (var output = model.ForwardOnTheseThreads(ids, new LmForwardOptions()))
                onBothThreads = output.Logits!.clone();
            Assert.Equal(onBothThreads.data<float>().ToArray(), withoutGradients.data<float>().ToArray());
            // Training writes attention out where inference uses the fused kernel (CausalAttention): the last bits only.
            Assert.True((withGradients - withoutGradients).abs().max().item<float>() <= 1e-5f * withGradients.abs().max().item<float>());

            var generation = new ThreadRecorder();
            var tokens = TextGenerator.Generate(model, [[5, 9, 13], [2, 7]], new GenerationSettings { MaxNewTokens = 4 },
                new LmForwardOptions { Adapters = generation });
            Assert.Equal(4, tokens[0].Length);
            Assert.Equal(4 * training.Threads.Count, generation.Threads.Count);   // the prompts' step and three one-token steps
            Assert.All(generation.Threads, t => Assert.Equal(1, t));
            Assert.Equal(2, torch.get_num_threads());
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [Fact]
    public void TheDefaultModelsGenerationStepsRunOnOneThreadAndAGpt2SmallTokenDoesNot()
    {
        var recipe = DefaultLanguageModel.Recipe;
        var vocabulary = 256 + recipe.Merges + 1;
        var parameters = 12L * recipe.Width * recipe.Width * recipe.Depth + (vocabulary + recipe.Context) * recipe.Width;
        Assert.True(8 * parameters <= DecoderLanguageModel.OneThreadLimit);   // one token for each of 8 rows
        Assert.True(124_000_000L > DecoderLanguageModel.OneThreadLimit);      // GPT-2 small, one token
    }
}
